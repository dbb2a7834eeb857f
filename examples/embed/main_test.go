package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol/internal/testhelper"
)

// TestEmbed runs the example for a few seconds: hooks print, the clock's
// output reaches the custom writer, the flaky app is restarted.
func TestEmbed(t *testing.T) {
	var out testhelper.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
	defer cancel()
	if err := run(ctx, &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"hook: app clock started", "clock says: ", "hook: app flaky exited, code 3 (crashed)", "hook: may flaky start? yes", "patrol listening on http://127.0.0.1:"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}
