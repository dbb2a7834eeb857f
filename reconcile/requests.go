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
		l.clearOverride(k)
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
		tg           target
	)
	switch k.Group {
	case schema.GroupApp:
		a, ok := l.file.App(k.ID)
		if !ok {
			return fmt.Errorf("%w: app %s", ErrUnknownEntry, k.ID)
		}
		fileDisabled, fingerprint = a.Disabled, a.Fingerprint()
		oa := l.app(a.ID)
		tg = target{restart: &oa.RestartRequested, pending: &oa.Pending, backoff: &oa.Backoff}
		if inst := oa.Instance; inst != nil {
			tg.live, tg.runOnce = inst.Stopping == nil, &inst.RunOnce
		}
	case schema.GroupService:
		v, ok := l.file.Service(k.ID)
		if !ok {
			return fmt.Errorf("%w: service %s", ErrUnknownEntry, k.ID)
		}
		fileDisabled, fingerprint = v.Disabled, v.Fingerprint()
		// A service's "instance" is the period its status says it runs.
		os := l.service(v.ID)
		tg = target{live: os.Running, restart: &os.RestartRequested, pending: &os.Pending, backoff: &os.Backoff}
		if os.Instance != nil {
			tg.runOnce = &os.Instance.RunOnce
		}
	default:
		return fmt.Errorf("%w: %s %s", ErrUnknownEntry, k.Group, k.ID)
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
			tg.backoff.Until = time.Time{} // an explicit enable starts now
		}
	}
	runOnce := func(on bool) {
		if tg.live && tg.runOnce != nil {
			*tg.runOnce = on // the running instance is the one
			ov.RunOnce = false
		} else {
			ov.RunOnce = on // the next instance is
		}
	}
	switch t {
	case schema.ToggleEnable:
		setDisabled(false)
	case schema.ToggleDisable:
		setDisabled(true)
		ov.RunOnce = false
		*tg.restart, *tg.pending = false, nil
		if tg.runOnce != nil {
			*tg.runOnce = false
		}
	case schema.ToggleRestart:
		setDisabled(false)
		ov.RunOnce = false
		if tg.live {
			*tg.restart = true
		} else {
			*tg.pending = &observed.Pending{Reason: schema.ReasonRestart}
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
	l.setOverride(k, ov, now)
	l.log.Info("toggle", "group", k.Group, "id", k.ID, "toggle", t.String(), "ttl", ttl)
	return nil
}

// target is what a toggle changes of an entry besides its override: the
// running instance's run-once, a pending restart, the backoff.
type target struct {
	live    bool  // an instance runs and is not being stopped
	runOnce *bool // the instance's run-once flag; nil without an instance
	restart *bool
	pending **observed.Pending
	backoff *observed.Backoff
}

// setOverride stores ov for k, or removes it when it no longer overrides
// anything; Since moves only when the policy changed.
func (l *Loop) setOverride(k desired.Key, ov *desired.Override, now time.Time) {
	old := l.overrides[k]
	if ov.Empty() {
		l.clearOverride(k)
		return
	}
	if old == nil || !samePolicy(old, ov) {
		ov.Since = now
	}
	l.overrides[k] = ov
	if ov.Replicas != 0 || (old != nil && old.Replicas != 0) {
		l.rescale(now)
	}
}

// clearOverride removes k's override.
func (l *Loop) clearOverride(k desired.Key) {
	old := l.overrides[k]
	delete(l.overrides, k)
	if old != nil && old.Replicas != 0 {
		l.rescale(l.now())
	}
}

// scale writes a scale override (the request's replicas): n replicas of
// app k instead of the file's count, which clears it. The caller checked
// that n can be applied (desired.State.ScaleProblem).
func (l *Loop) scale(k desired.Key, n int, ttl time.Duration, now time.Time) {
	a, _ := l.conf.App(k.ID)
	ov := &desired.Override{Since: now, Fingerprint: a.Fingerprint()}
	if old := l.overrides[k]; old != nil {
		c := *old
		ov = &c
	}
	ov.Replicas = n
	if fileN, _ := l.conf.Replicas(k.ID); n == fileN {
		ov.Replicas = 0 // the file's count: no override needed
	}
	if ttl > 0 {
		ov.Expires = now.Add(ttl)
	}
	l.setOverride(k, ov, now)
	l.log.Info("scale", "app", k.ID, "replicas", n, "ttl", ttl)
}

// disableAfterRunOnce disables an entry whose run-once instance ended, as
// the original Patrol did, through an override the file can supersede.
func (l *Loop) disableAfterRunOnce(k desired.Key, fileDisabled bool, fingerprint string, now time.Time) {
	ov := l.overrides[k]
	if ov == nil {
		ov = &desired.Override{Fingerprint: fingerprint}
	}
	ov.RunOnce, ov.Disabled = false, nil
	if !fileDisabled {
		t := true
		ov.Disabled = &t
	}
	l.setOverride(k, ov, now)
}

func samePolicy(a, b *desired.Override) bool {
	return a.RunOnce == b.RunOnce && a.Replicas == b.Replicas && (a.Disabled == nil) == (b.Disabled == nil) &&
		(a.Disabled == nil || *a.Disabled == *b.Disabled)
}
