package desired

import (
	"errors"
	"sort"
	"strings"

	"github.com/hashicorp/go-multierror"
)

// FieldError is one problem in a config, at a JSON path such as
// "apps.web.binary" (empty for a problem with the document as a whole).
type FieldError struct {
	Path string
	Msg  string
}

// Error returns "path: message".
func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Problems flattens an error returned by Load or Parse into one line per
// problem, in a stable order.
func Problems(err error) []string {
	if err == nil {
		return nil
	}
	var me *multierror.Error
	if errors.As(err, &me) {
		out := make([]string, 0, len(me.Errors))
		for _, e := range me.Errors {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}

// problems collects every problem found while loading one config.
type problems struct {
	list []*FieldError
	// bad holds paths whose value could not be decoded; later checks skip
	// them so that one mistake is reported once.
	bad map[string]bool
}

func (p *problems) add(path, msg string) {
	if p.suppressed(path) {
		return
	}
	p.list = append(p.list, &FieldError{Path: path, Msg: msg})
}

// addBad records a problem with the value at path and marks the path so
// that validation does not report the same value again.
func (p *problems) addBad(path, msg string) {
	p.add(path, msg)
	p.markBad(path)
}

// markBad makes later checks skip path.
func (p *problems) markBad(path string) {
	if p.bad == nil {
		p.bad = map[string]bool{}
	}
	p.bad[path] = true
}

// suppressed reports whether path or one of its parents could not be
// decoded.
func (p *problems) suppressed(path string) bool {
	for q := path; q != ""; q = parentPath(q) {
		if p.bad[q] {
			return true
		}
	}
	return false
}

// parentPath drops the last element of a path: apps.web.args[2] ->
// apps.web.args -> apps.web -> apps -> "".
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return ""
}

// err returns the problems as one error, sorted by path, or nil.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	sort.SliceStable(p.list, func(i, j int) bool {
		if p.list[i].Path != p.list[j].Path {
			return p.list[i].Path < p.list[j].Path
		}
		return p.list[i].Msg < p.list[j].Msg
	})
	me := &multierror.Error{ErrorFormat: listFormat}
	for _, e := range p.list {
		me.Errors = append(me.Errors, e)
	}
	return me
}

// listFormat formats a multierror as one problem per line.
func listFormat(errs []error) string {
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}
