package reconcile

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/schema"
)

// casRestartJump is added to every persisted CAS when Patrol starts again:
// changes that were never written (pings bump the CAS but are not synced)
// make the in-memory CAS run ahead of the persisted one, and a client
// holding such a value must not find it valid again after a restart.
const casRestartJump = 1 << 20

// persisted is what the loop last wrote for an entry, to write only
// changes.
type persisted struct {
	meta     metaKey
	instance instanceKey
	runs     string // runsKeyOf the earlier runs
	lastHist string // instance id of the last record written
}

// metaKey identifies what of an entry's meta is worth writing. It is
// compared, not printed: a commit after every ping builds one.
type metaKey struct {
	kvWrites       int
	override       overrideKey
	kv             string
	starts         int
	stdout, stderr string
}

func metaOf(e *observed.Entry, ov *desired.Override, starts int, stdout, stderr string) metaKey {
	return metaKey{kvWrites: e.KeyValueWrites, override: overrideKeyOf(ov), kv: kvText(e.KeyValue),
		starts: starts, stdout: stdout, stderr: stderr}
}

// restore loads the persisted state at start: CAS counters, key/value,
// overrides, history, and the instances that were running. A persisted
// instance whose process is still alive with the same start time is
// adopted (no new process; its instance id is kept); one whose process is
// gone, or whose pid now names another process, is closed into history.
func (l *Loop) restore(p *observed.Persisted, now time.Time) {
	if p == nil {
		return
	}
	l.touchAll()
	for k, e := range p.Entries {
		if e.Override != nil {
			ov := *e.Override
			l.overrides[k] = &ov
		}
	}
	// The replicas a scale override adds are in the config before their
	// instances are adopted.
	l.rescale(now)
	for k, e := range p.Entries {
		switch k.Group {
		case schema.GroupApp:
			oa := l.app(k.ID)
			oa.CAS = e.CAS + casRestartJump
			oa.KeyValue = cloneKV(e.KeyValue)
			oa.History = append([]observed.Record(nil), e.History...)
			oa.Starts = e.Starts
			if n := len(e.History); e.Instance == nil && n > 0 && e.History[n-1].Reason == schema.ReasonShutdown {
				oa.Resumed = true
			}
			oa.LastStdout, oa.LastStderr = e.LastStdout, e.LastStderr
			w := l.persistedOf(k, e.Instance)
			w.runs = runsKeyOf(e.Runs)
			l.written[k] = w
			for _, pi := range e.Runs {
				if run := l.restoreInstance(oa, pi, now); run != nil {
					oa.Runs = append(oa.Runs, run)
				}
			}
			if inst := l.restoreInstance(oa, e.Instance, now); inst != nil {
				oa.Instance = inst
				l.beginHealth(oa.ID, inst, now, true)
			}
		case schema.GroupService:
			os := l.service(k.ID)
			os.CAS = e.CAS + casRestartJump
			os.KeyValue = cloneKV(e.KeyValue)
			os.History = append([]observed.Record(nil), e.History...)
			os.Starts = e.Starts
			if pi := e.Instance; pi != nil {
				os.Instance = &observed.ServiceInstance{ID: pi.ID, Started: pi.Started, LastSeen: pi.LastSeen,
					Revision: pi.Revision, RunOnce: pi.RunOnce, Fingerprint: pi.Fingerprint}
				os.Running = true // the first status check confirms it
			}
			l.written[k] = l.persistedOf(k, e.Instance)
		}
	}
}

// restoreInstance adopts a persisted app instance if its process lives on
// and returns it (nil when it is gone: then it is closed into history).
func (l *Loop) restoreInstance(oa *observed.App, pi *observed.PersistedInstance, now time.Time) *observed.Instance {
	if pi == nil {
		return nil
	}
	da, inFile := l.file.App(oa.ID)
	if pi.PID == 0 && inFile && !da.Keepalive.Pinged() && da.Keepalive != schema.KeepalivePIDApp {
		// Patrol died between starting the process and recording its pid:
		// find it by what it must look like.
		// Its environment names the app (PATROL_ID), which tells it apart
		// from other apps running the same command in the same directory.
		argv := append([]string{da.Binary}, da.Args...)
		// A process forked but not yet exec'd has Patrol's command line:
		// give it a moment to become the app.
		var pids []int
		for try := 0; try < 10; try++ {
			if pids = l.exec.FindSpawned(argv, da.WorkingDirectory, "PATROL_ID="+oa.ID, pi.Started, 2*time.Second); len(pids) == 1 {
				if pgid, st, err := l.exec.ProcStat(pids[0]); err == nil {
					pi.PID, pi.PGID, pi.SpawnPGID, pi.StartTime = pids[0], pgid, pgid, st
					l.log.Warn("found a process started just before Patrol stopped", "app", oa.ID, "pid", pids[0])
				}
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if len(pids) > 1 {
			l.log.Error("several processes look like the one started just before Patrol stopped; adopting none of them",
				"app", oa.ID, "pids", pids)
		}
	}
	alive := false
	if pi.PID > 0 {
		if _, st, err := l.exec.ProcStat(pi.PID); err == nil && st == pi.StartTime && l.exec.Alive(pi.PID) {
			alive = true
		} else if err == nil && st != pi.StartTime {
			l.log.Warn("pid of a persisted instance now names another process; not adopting it", "app", oa.ID, "pid", pi.PID)
		}
	}
	app := da
	if !inFile {
		// Removed from the config while Patrol was down: adopt it so that
		// the plan stops it, with the config it had (unknown now: a
		// minimal stand-in).
		app = &desired.App{ID: oa.ID, Keepalive: schema.Keepalive(pi.Keepalive), StopSignal: "SIGTERM", StopTimeout: 10 * time.Second}
	}
	if alive {
		if _, err := l.exec.Watch(pi.PID, pi.ID, observed.RoleLeader); err != nil {
			alive = false
		}
	}
	if !alive {
		rec := observed.Record{
			InstanceID: pi.ID, PID: pi.PID, Started: pi.Started, LastSeen: pi.LastSeen, Stopped: now,
			RunOnce: pi.RunOnce, ExitCode: 0, Reason: schema.ReasonPIDGone, ConfigRevision: pi.Revision,
			KeyValue: cloneKV(oa.KeyValue),
		}
		l.appendHistory(oa, rec)
		oa.LastEnd = &observed.End{Reason: schema.ReasonPIDGone, At: now, Fingerprint: pi.Fingerprint, BySelf: true}
		if pi.PGID > 0 && (pi.PGID == pi.PID || pi.PGID == pi.SpawnPGID) && pi.Signalable && l.exec.GroupAlive(pi.PGID) {
			oa.Leftover = &observed.Leftover{PGID: pi.PGID, Since: now, Watched: l.exec.WatchEmpty(pi.PGID)}
		}
		l.log.Warn("an instance that ran before Patrol restarted is gone", "app", oa.ID, "pid", pi.PID, "instance", pi.ID)
		return nil
	}
	inst := &observed.Instance{
		ID: pi.ID, App: app, Revision: pi.Revision, PID: pi.PID, PGID: pi.PGID, SpawnPGID: pi.SpawnPGID,
		StartTime: pi.StartTime, Started: pi.Started, LastSeen: now, RunOnce: pi.RunOnce,
		Adopted: true, Signalable: pi.Signalable, Stdout: pi.Stdout, Stderr: pi.Stderr,
		PIDFromPing: app.Keepalive.Pinged() && pi.PID > 0,
	}
	switch {
	case !inFile:
	case pi.Shape != "":
		// The config changed while Patrol was down in a key that needs a
		// restart; a change of only in-place keys is applied to the
		// adopted instance (it runs with the file's config from now on).
		inst.Stale = pi.Shape != da.Shape()
	default:
		inst.Stale = pi.Fingerprint != da.Fingerprint() // written by an older Patrol
	}
	if inFile {
		if !inst.Stale && pi.Fingerprint != da.Fingerprint() {
			inst.Revision = l.file.Revision() // it runs with the file's in-place keys now
		}
		// Its cgroups kept their limits; the file may have changed them
		// while Patrol was down.
		l.setLimits(inst)
	}
	l.tags[pi.ID] = oa.ID
	l.log.Info("re-adopted an instance that ran before Patrol restarted", "app", oa.ID, "pid", pi.PID, "instance", pi.ID)
	l.emit(schema.Event{Event: schema.EventAdopted, Group: schema.GroupApp, ID: oa.ID, PID: pi.PID, InstanceID: pi.ID, Reason: schema.ReasonAdopted})
	return inst
}

// persist writes what changed in the given entries since the last write
// to the store; with sync, it also makes it durable before returning (an
// API change is durable before its reply).
func (l *Loop) persist(keys map[desired.Key]struct{}, sync bool) {
	if l.store == nil {
		return
	}
	var changes []observed.Change
	limit := l.file.Settings().History
	for k := range keys {
		switch k.Group {
		case schema.GroupApp:
			if oa := l.snap.Apps[k.ID]; oa != nil {
				changes = l.diffEntry(changes, k, &oa.Entry, oa.History, oa.Starts, oa.LastStdout, oa.LastStderr, appInstance(oa.Instance), appRuns(oa), limit)
			}
		case schema.GroupService:
			if os := l.snap.Services[k.ID]; os != nil {
				changes = l.diffEntry(changes, k, &os.Entry, os.History, os.Starts, "", "", serviceInstance(os), nil, limit)
			}
		}
	}
	if len(changes) > 0 {
		l.store.Put(changes...)
	}
	if sync || len(changes) > 0 {
		if err := l.store.Sync(); err != nil {
			l.log.Error("cannot save state; changes since the last save would be lost in a crash", "err", err)
		}
	}
}

// diffEntry appends the changes of one entry since it was last written.
func (l *Loop) diffEntry(changes []observed.Change, k desired.Key, e *observed.Entry, history []observed.Record,
	starts int, stdout, stderr string, inst *observed.PersistedInstance, runs []*observed.PersistedInstance, limit int) []observed.Change {
	w := l.written[k]
	ov := l.overrides[k]
	if meta := metaOf(e, ov, starts, stdout, stderr); meta != w.meta {
		changes = append(changes, observed.SetMeta(k, e.CAS, cloneKV(e.KeyValue), cloneOverride(ov), starts, stdout, stderr))
		w.meta = meta
	}
	if it, rk := instanceKeyOf(inst), runsKeyOf(runs); it != w.instance || rk != w.runs {
		changes = append(changes, observed.SetInstances(k, inst, runs))
		w.instance, w.runs = it, rk
	}
	// History: the records after the last one written (the in-memory list
	// is capped, so find it by instance id).
	start := 0
	if w.lastHist != "" {
		start = len(history)
		for i := len(history) - 1; i >= 0; i-- {
			if history[i].InstanceID == w.lastHist {
				start = i + 1
				break
			}
		}
	}
	for _, r := range history[start:] {
		changes = append(changes, observed.AppendHistory(k, r, limit))
		w.lastHist = r.InstanceID
	}
	l.written[k] = w
	return changes
}

// persistedOf is what the store holds for k as restored, before the
// restored instance is re-adopted or closed: its meta and history as in
// memory now, and the instance as the store has it.
func (l *Loop) persistedOf(k desired.Key, inst *observed.PersistedInstance) persisted {
	var w persisted
	var e *observed.Entry
	var history []observed.Record
	var starts int
	var stdout, stderr string
	switch k.Group {
	case schema.GroupApp:
		oa := l.snap.Apps[k.ID]
		e, history, starts, stdout, stderr = &oa.Entry, oa.History, oa.Starts, oa.LastStdout, oa.LastStderr
	default:
		os := l.snap.Services[k.ID]
		e, history, starts = &os.Entry, os.History, os.Starts
	}
	if inst != nil {
		c := *inst
		inst = &c
	}
	w.meta = metaOf(e, l.overrides[k], starts, stdout, stderr)
	w.instance = instanceKeyOf(inst)
	if n := len(history); n > 0 {
		w.lastHist = history[n-1].InstanceID
	}
	return w
}

// appRuns are the earlier runs of an app (concurrency "allow") as the
// store keeps them.
func appRuns(oa *observed.App) []*observed.PersistedInstance {
	var out []*observed.PersistedInstance
	for _, r := range oa.Runs {
		out = append(out, appInstance(r))
	}
	return out
}

// runsKeyOf identifies earlier runs for writing: their instances, pids and
// whether they are being stopped do not change otherwise.
func runsKeyOf(runs []*observed.PersistedInstance) string {
	var b strings.Builder
	for _, r := range runs {
		fmt.Fprintf(&b, "%s/%d/%d;", r.ID, r.PID, r.StartTime)
	}
	return b.String()
}

func appInstance(inst *observed.Instance) *observed.PersistedInstance {
	if inst == nil {
		return nil
	}
	return &observed.PersistedInstance{
		ID: inst.ID, PID: inst.PID, PGID: inst.PGID, SpawnPGID: inst.SpawnPGID, StartTime: inst.StartTime,
		Started: inst.Started, LastSeen: inst.LastSeen, Keepalive: int(inst.App.Keepalive), RunOnce: inst.RunOnce,
		Adopted: inst.Adopted, Signalable: inst.Signalable, Revision: inst.Revision, Fingerprint: inst.App.Fingerprint(),
		Shape: inst.App.Shape(), Stdout: inst.Stdout, Stderr: inst.Stderr,
	}
}

func serviceInstance(os *observed.Service) *observed.PersistedInstance {
	inst := os.Instance
	if inst == nil {
		return nil
	}
	return &observed.PersistedInstance{ID: inst.ID, Started: inst.Started, LastSeen: inst.LastSeen, RunOnce: inst.RunOnce,
		Revision: inst.Revision, Fingerprint: inst.Fingerprint}
}

// instanceKey identifies what of an instance is worth writing: not its
// last-seen time, which pings move all the time.
type instanceKey struct {
	set                          bool
	id                           string
	pid, pgid, spawnPGID         int
	startTime                    uint64
	runOnce, adopted, signalable bool
	fingerprint                  string
}

func instanceKeyOf(i *observed.PersistedInstance) instanceKey {
	if i == nil {
		return instanceKey{}
	}
	return instanceKey{set: true, id: i.ID, pid: i.PID, pgid: i.PGID, spawnPGID: i.SpawnPGID, startTime: i.StartTime,
		runOnce: i.RunOnce, adopted: i.Adopted, signalable: i.Signalable, fingerprint: i.Fingerprint}
}

// overrideKey identifies an override for writing.
type overrideKey struct {
	set            bool
	disabled       int8 // -1 no opinion, 0 enabled, 1 disabled
	runOnce        bool
	replicas       int
	since, expires int64
	fingerprint    string
}

func overrideKeyOf(o *desired.Override) overrideKey {
	if o == nil {
		return overrideKey{}
	}
	k := overrideKey{set: true, disabled: -1, runOnce: o.RunOnce, replicas: o.Replicas, since: o.Since.UnixNano(),
		expires: o.Expires.UnixNano(), fingerprint: o.Fingerprint}
	if o.Disabled != nil {
		k.disabled = 0
		if *o.Disabled {
			k.disabled = 1
		}
	}
	return k
}

func cloneOverride(o *desired.Override) *desired.Override {
	if o == nil {
		return nil
	}
	c := *o
	if o.Disabled != nil {
		d := *o.Disabled
		c.Disabled = &d
	}
	return &c
}

func kvText(kv map[string]any) string {
	if len(kv) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprint(&b, kv) // map printing is sorted
	return b.String()
}

// writeIntents records, before any process is started, the instances the
// plan's starts will create (without pids): if Patrol dies between a start
// and the record of its pid, the next Patrol finds the process
// (FindSpawned) instead of starting a second copy.
func (l *Loop) writeIntents(actions []Action, now time.Time) {
	if l.store == nil {
		return
	}
	var changes []observed.Change
	for i := range actions {
		a := &actions[i]
		if a.Kind != KindStart || a.Group != schema.GroupApp || a.App == nil {
			continue
		}
		a.Instance = uuid.NewString()
		if a.App.Keepalive == schema.KeepalivePIDApp {
			continue // a daemon is found again through its pid file
		}
		changes = append(changes, observed.SetInstance(desired.Key{Group: schema.GroupApp, ID: a.ID}, &observed.PersistedInstance{
			ID: a.Instance, Started: now, LastSeen: now, Keepalive: int(a.App.Keepalive), Signalable: true,
			Revision: l.file.Revision(), Fingerprint: a.App.Fingerprint(), Shape: a.App.Shape(),
		}))
	}
	if len(changes) == 0 {
		return
	}
	// Written, not fsynced: an intent serves the next Patrol after this one
	// died while the machine ran on (the kernel still has the write); after
	// a crash of the machine there is no process to find. The pass's commit
	// fsyncs it with the instances it started, after the forks rather than
	// before them.
	l.store.Put(changes...)
	if err := l.store.Flush(); err != nil {
		l.log.Error("cannot save state before starting apps", "err", err)
	}
}
