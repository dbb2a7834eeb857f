package reconcile

import (
	"context"
	"fmt"
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/schema"
)

// Toggle applies an API toggle (DESIGN §5.5) to an entry as an override on
// top of the file; ttl > 0 makes the override expire.
func (l *Loop) Toggle(ctx context.Context, k desired.Key, t schema.Toggle, ttl time.Duration) error {
	var err error
	if e := l.do(ctx, func() {
		err = l.toggle(k, t, ttl, l.now())
		l.touch(k.Group, k.ID)
		l.commit(l.now(), true)
	}); e != nil {
		return e
	}
	return err
}

// ClearOverride removes an entry's override: the file alone decides again.
func (l *Loop) ClearOverride(ctx context.Context, k desired.Key) error {
	var err error
	if e := l.do(ctx, func() {
		_, isApp := l.file.App(k.ID)
		_, isService := l.file.Service(k.ID)
		if (k.Group == schema.GroupApp && !isApp) || (k.Group == schema.GroupService && !isService) ||
			(k.Group != schema.GroupApp && k.Group != schema.GroupService) {
			err = fmt.Errorf("%w: %s %s", ErrUnknownEntry, k.Group, k.ID)
			return
		}
		delete(l.overrides, k)
		l.touch(k.Group, k.ID)
		l.commit(l.now(), true)
	}); e != nil {
		return e
	}
	return err
}

func (l *Loop) toggle(k desired.Key, t schema.Toggle, ttl time.Duration, now time.Time) error {
	if !t.Valid() {
		return fmt.Errorf("invalid toggle %d", t)
	}
	var (
		fileDisabled bool
		fingerprint  string
		oa           = &observed.App{}
		os           *observed.Service
	)
	switch k.Group {
	case schema.GroupApp:
		a, ok := l.file.App(k.ID)
		if !ok {
			return fmt.Errorf("%w: app %s", ErrUnknownEntry, k.ID)
		}
		fileDisabled, fingerprint, oa = a.Disabled, a.Fingerprint(), l.app(a.ID)
	case schema.GroupService:
		v, ok := l.file.Service(k.ID)
		if !ok {
			return fmt.Errorf("%w: service %s", ErrUnknownEntry, k.ID)
		}
		fileDisabled, fingerprint = v.Disabled, v.Fingerprint()
		os = l.service(v.ID)
	default:
		return fmt.Errorf("%w: %s %s", ErrUnknownEntry, k.Group, k.ID)
	}
	inst := oa.Instance
	live := inst != nil && inst.Stopping == nil
	if os != nil {
		// A service: its "instance" is the period its status says it runs.
		return l.toggleService(k, os, t, ttl, now, fileDisabled, fingerprint)
	}
	ov := &desired.Override{Since: now, Fingerprint: fingerprint}
	if old := l.overrides[k]; old != nil {
		c := *old
		ov = &c
	}
	setDisabled := func(v bool) {
		if v == fileDisabled {
			ov.Disabled = nil // equal to the file: no override needed
		} else {
			ov.Disabled = &v
		}
		if !v {
			oa.Backoff.Until = time.Time{} // an explicit enable starts now
		}
	}
	runOnce := func(on bool) {
		if live {
			inst.RunOnce = on
			ov.RunOnce = false
		} else {
			ov.RunOnce = on
		}
	}
	switch t {
	case schema.ToggleEnable:
		setDisabled(false)
	case schema.ToggleDisable:
		setDisabled(true)
		ov.RunOnce = false
		oa.RestartRequested = false
		oa.Pending = nil
		if inst != nil {
			inst.RunOnce = false
		}
	case schema.ToggleRestart:
		setDisabled(false)
		ov.RunOnce = false
		if live {
			oa.RestartRequested = true
		} else {
			oa.Pending = &observed.Pending{Reason: schema.ReasonRestart}
		}
	case schema.ToggleRunOnceEnable:
		runOnce(true)
	case schema.ToggleRunOnceDisable:
		runOnce(false)
	case schema.ToggleEnableRunOnceEnable:
		setDisabled(false)
		runOnce(true)
	case schema.ToggleEnableRunOnceDisable:
		setDisabled(false)
		runOnce(false)
	}
	if ttl > 0 {
		ov.Expires = now.Add(ttl)
	}
	if ov.Empty() {
		delete(l.overrides, k)
	} else {
		if old := l.overrides[k]; old == nil || !samePolicy(old, ov) {
			ov.Since = now
		}
		l.overrides[k] = ov
	}
	l.log.Info("toggle", "group", k.Group, "id", k.ID, "toggle", t.String(), "ttl", ttl)
	return nil
}

func samePolicy(a, b *desired.Override) bool {
	return a.RunOnce == b.RunOnce && (a.Disabled == nil) == (b.Disabled == nil) &&
		(a.Disabled == nil || *a.Disabled == *b.Disabled)
}

// toggleService is toggle for a service.
func (l *Loop) toggleService(k desired.Key, os *observed.Service, t schema.Toggle, ttl time.Duration, now time.Time, fileDisabled bool, fingerprint string) error {
	ov := &desired.Override{Since: now, Fingerprint: fingerprint}
	if old := l.overrides[k]; old != nil {
		c := *old
		ov = &c
	}
	setDisabled := func(v bool) {
		if v == fileDisabled {
			ov.Disabled = nil
		} else {
			ov.Disabled = &v
		}
		if !v {
			os.Backoff.Until = time.Time{}
		}
	}
	runOnce := func(on bool) {
		if os.Instance != nil {
			os.Instance.RunOnce = on
			ov.RunOnce = false
		} else {
			ov.RunOnce = on
		}
	}
	switch t {
	case schema.ToggleEnable:
		setDisabled(false)
	case schema.ToggleDisable:
		setDisabled(true)
		ov.RunOnce = false
		os.RestartRequested = false
		os.Pending = nil
		if os.Instance != nil {
			os.Instance.RunOnce = false
		}
	case schema.ToggleRestart:
		setDisabled(false)
		ov.RunOnce = false
		if os.Running {
			os.RestartRequested = true
		} else {
			os.Pending = &observed.Pending{Reason: schema.ReasonRestart}
		}
	case schema.ToggleRunOnceEnable:
		runOnce(true)
	case schema.ToggleRunOnceDisable:
		runOnce(false)
	case schema.ToggleEnableRunOnceEnable:
		setDisabled(false)
		runOnce(true)
	case schema.ToggleEnableRunOnceDisable:
		setDisabled(false)
		runOnce(false)
	}
	if ttl > 0 {
		ov.Expires = now.Add(ttl)
	}
	if ov.Empty() {
		delete(l.overrides, k)
	} else {
		if old := l.overrides[k]; old == nil || !samePolicy(old, ov) {
			ov.Since = now
		}
		l.overrides[k] = ov
	}
	l.log.Info("toggle", "group", k.Group, "id", k.ID, "toggle", t.String(), "ttl", ttl)
	return nil
}
