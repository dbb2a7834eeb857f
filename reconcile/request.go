package reconcile

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/schema"
)

// Request applies one API request (HTTP, UDP or a library call) and returns
// the entry as it was before the request, as the original Patrol did. API
// errors ("Unknown App", "Secret Invalid", ...) are in Response.Errors; the
// error is non-nil only when the loop cannot answer.
func (l *Loop) Request(ctx context.Context, req *schema.Request, via schema.Transport) (*schema.Response, error) {
	var resp *schema.Response
	if err := l.do(ctx, func() {
		resp, l.light = l.requestLight(req, via, l.now())
	}); err != nil {
		return nil, err
	}
	return resp, nil
}

// RequestBatch applies reqs in order, each as Request would, in one visit
// to the loop goroutine (one hand-off there and back for all of them, as
// the UDP API does with the datagrams waiting together), and returns their
// answers. A pass follows unless every request was light (see serve).
func (l *Loop) RequestBatch(ctx context.Context, reqs []*schema.Request, via schema.Transport) ([]*schema.Response, error) {
	resps := make([]*schema.Response, len(reqs))
	if err := l.do(ctx, func() {
		now := l.now()
		all := true
		for i, req := range reqs {
			var light bool
			resps[i], light = l.requestLight(req, via, now)
			all = all && light
		}
		l.light = all
	}); err != nil {
		return nil, err
	}
	return resps, nil
}

// requestLight applies one request on the loop goroutine and reports
// whether it was light: whether no pass needs to follow it.
func (l *Loop) requestLight(req *schema.Request, via schema.Transport, now time.Time) (*schema.Response, bool) {
	l.light = false
	resp := l.request(req, via, now)
	if len(resp.Errors) > 0 {
		return resp, true // refused: nothing changed
	}
	return resp, l.light
}

func apiError(msg string) *schema.Response { return &schema.Response{Errors: []string{msg}} }

// request follows the original Patrol's processing order (seed §11.5).
func (l *Loop) request(req *schema.Request, via schema.Transport, now time.Time) *schema.Response {
	if req == nil {
		return apiError(schema.ErrRequestNil)
	}
	group, ok := schema.ParseGroup(req.Group)
	if req.Ping && group == schema.GroupService {
		// The original checked the raw group, so "Service" slipped through;
		// any spelling is refused here.
		return apiError(schema.ErrServicesDontSupport)
	}
	if !ok {
		return apiError(schema.ErrUnknownGroup)
	}
	if !req.Toggle.Valid() && req.Toggle != 0 {
		return apiError(schema.ErrInvalidToggle)
	}
	if req.TTL < 0 {
		return apiError(schema.ErrInvalidTTL)
	}
	if req.Replicas != 0 && group != schema.GroupApp {
		// An app's count is checked with the app (ScaleProblem).
		return apiError(schema.ErrInvalidReplicas + ": only an app has replicas")
	}
	id := strings.ToLower(req.ID)
	if group == schema.GroupService {
		return l.serviceRequest(id, req, now)
	}
	return l.appRequest(id, req, via, now)
}

// secretCheck applies the secret rules: no secret configured → ok; a
// request without one → a read-only answer; a wrong one → "Secret Invalid".
// Secrets are compared in constant time (of their hashes, so that not even
// the length leaks).
func secretCheck(want, got string) (readOnly bool, errMsg string) {
	if want == "" {
		return false, ""
	}
	if got == "" {
		return true, ""
	}
	w, g := sha256.Sum256([]byte(want)), sha256.Sum256([]byte(got))
	if subtle.ConstantTimeCompare(w[:], g[:]) != 1 {
		return false, schema.ErrSecretInvalid
	}
	return false, ""
}

func (l *Loop) appRequest(id string, req *schema.Request, via schema.Transport, now time.Time) *schema.Response {
	da, ok := l.file.App(id)
	if !ok {
		return apiError(schema.ErrUnknownApp)
	}
	oa := l.app(id)
	readOnly, errMsg := secretCheck(da.Secret, req.Secret)
	if errMsg != "" {
		return apiError(errMsg)
	}
	l.touch(schema.GroupApp, id)
	pre := l.appResponse(l.effective(), id, now, req.History)
	pre.ID, pre.Group, pre.Shutdown = id, string(schema.GroupApp), l.snap.Shutdown
	if readOnly {
		pre.CASInvalid = true
		l.light = true
		return pre
	}
	if req.Ping {
		switch {
		case !da.Keepalive.Pinged():
			return apiError(schema.ErrPingNotSupported)
		case via == schema.TransportHTTP && da.Keepalive != schema.KeepaliveHTTP,
			via == schema.TransportUDP && da.Keepalive != schema.KeepaliveUDP:
			return apiError(schema.ErrInvalidPingEndpoint)
		}
	}
	if req.PID > 0 {
		switch {
		case !da.Keepalive.Pinged():
			return apiError(schema.ErrPIDNotSupported)
		case !req.Ping:
			return apiError(schema.ErrPIDRequiresPing)
		}
	}
	changed, err := l.applyChange(desired.Key{Group: schema.GroupApp, ID: id}, &oa.Entry, req, pre, now)
	if err != nil {
		return apiError(err.Error())
	}
	// Only a ping's refresh of a running instance, or nothing, needs no
	// pass after it (see Loop.serve).
	light := !changed
	if req.Ping {
		if !l.ping(oa, da, int(req.PID), now) {
			light = false
		}
		if inst := oa.Instance; inst != nil {
			l.emit(schema.Event{Event: schema.EventPinged, Group: schema.GroupApp, ID: id, PID: inst.PID, InstanceID: inst.ID})
		}
	}
	l.commit(now, true)
	l.light = light
	return pre
}

func (l *Loop) serviceRequest(id string, req *schema.Request, now time.Time) *schema.Response {
	ds, ok := l.file.Service(id)
	if !ok {
		return apiError(schema.ErrUnknownService)
	}
	os := l.service(id)
	readOnly, errMsg := secretCheck(ds.Secret, req.Secret)
	if errMsg != "" {
		return apiError(errMsg)
	}
	l.touch(schema.GroupService, id)
	pre := l.serviceResponse(l.effective(), id, req.History)
	pre.ID, pre.Group, pre.Shutdown = id, string(schema.GroupService), l.snap.Shutdown
	if readOnly {
		pre.CASInvalid = true
		l.light = true
		return pre
	}
	if req.PID > 0 {
		return apiError(schema.ErrPIDNotSupported)
	}
	changed, err := l.applyChange(desired.Key{Group: schema.GroupService, ID: id}, &os.Entry, req, pre, now)
	if err != nil {
		return apiError(err.Error())
	}
	l.commit(now, true)
	l.light = !changed
	return pre
}

// applyChange applies a request's key/value write, clear and toggle to an
// entry, unless the request names a CAS that is not the entry's: then
// nothing is applied and pre says so. A key/value write whose result would
// break keyvalue-limits refuses the whole request, before anything is
// applied. It reports whether the request asked for a change that was
// applied (a pass should follow it).
func (l *Loop) applyChange(key desired.Key, e *observed.Entry, req *schema.Request, pre *schema.Response, now time.Time) (bool, error) {
	if req.CAS != 0 && req.CAS != e.CAS {
		pre.CASInvalid = true
		return false, nil
	}
	if req.Replicas != 0 {
		// Checked before anything is applied, so that a refused scale
		// refuses the whole request.
		if why := l.file.ScaleProblem(key.ID, req.Replicas); why != "" {
			return false, errors.New(schema.ErrInvalidReplicas + ": " + why)
		}
	}
	if kv, writes := keyValueAfter(e.KeyValue, req); writes {
		if apiErr, detail := l.file.Settings().KeyValue.Problem(kv); apiErr != "" {
			l.log.Info("key/value write refused", "group", key.Group, "id", key.ID, "reason", "the result "+detail)
			return false, errors.New(apiErr)
		}
		// A write always counts as a change for CAS.
		e.KeyValue = kv
		e.KeyValueWrites++
	}
	if req.Clear {
		l.clearOverride(key)
	}
	if req.Toggle != 0 {
		if err := l.toggle(key, req.Toggle, ttl(req.TTL), now); err != nil {
			return false, err
		}
	}
	if req.Replicas != 0 {
		l.scale(key, req.Replicas, ttl(req.TTL), now)
	}
	return req.Toggle != 0 || req.Clear || req.Replicas != 0 || req.KeyValue != nil || req.KeyValueReplace, nil
}

func ttl(s schema.Seconds) time.Duration { return time.Duration(float64(s) * float64(time.Second)) }

// keyValueAfter returns the key/value data kv becomes with req's write:
// merged, or with keyvalue-replace replaced (an empty result is nil), and
// whether req writes at all. kv itself is not changed.
func keyValueAfter(kv map[string]any, req *schema.Request) (map[string]any, bool) {
	switch {
	case req.KeyValueReplace:
		out := maps.Clone(req.KeyValue)
		if len(out) == 0 {
			out = nil
		}
		return out, true
	case len(req.KeyValue) > 0:
		out := make(map[string]any, len(kv)+len(req.KeyValue))
		maps.Copy(out, kv)
		maps.Copy(out, req.KeyValue)
		return out, true
	}
	return kv, false
}

// ping records a keepalive 3 or 4 app's ping (seed §3.4): it refreshes the
// instance, learns its pid, adopts an app started outside Patrol, or, when
// the pid changed, closes the old instance and opens a new one. It reports
// whether it changed no more than the instance's last-seen time.
func (l *Loop) ping(oa *observed.App, da *desired.App, pid int, now time.Time) (refreshed bool) {
	if l.snap.Shutdown {
		return true // nothing changes
	}
	inst := oa.Instance
	switch {
	case inst != nil && inst.Stopping != nil:
		return true // it is being stopped; a last ping changes nothing
	case inst == nil:
		l.adoptByPing(oa, da, pid, now)
		return false
	case pid == 0 || pid == inst.PID:
		refreshed = true
	case !inst.PIDFromPing && !inst.Adopted:
		// Patrol started it; the pinging process may be the child itself
		// or a process it started. Trust it only inside the instance's
		// process group or when it verifiably runs the binary.
		if l.trusted(da, pid, inst.PGID) {
			l.learnPingPID(oa, inst, pid)
		} else {
			l.log.Warn("ping names a pid outside the app's process group; ignored", "app", oa.ID, "pid", pid)
		}
	default:
		// A known instance reports another pid: a new instance (seed).
		l.log.Info("ping reports a new pid: new instance", "app", oa.ID, "old-pid", inst.PID, "pid", pid)
		l.closeInstance(oa, nil, now, schema.ReasonPIDChanged)
		l.adoptByPing(oa, da, pid, now)
		return false
	}
	inst.LastSeen = now
	return refreshed
}

// trusted reports whether a pid reported by a ping may be signalled: it is
// in the instance's process group, or it runs the app's binary and
// pid-verify asks for that check.
func (l *Loop) trusted(da *desired.App, pid, pgid int) bool {
	if g, _, err := l.exec.ProcStat(pid); err == nil && pgid > 0 && g == pgid {
		return true
	}
	return da.PIDVerify && l.exec.VerifyBinary(pid, da.Binary) == nil
}

// learnPingPID makes the pinging process the leader of a Patrol-started
// keepalive 3/4 instance; the process Patrol started becomes its launcher,
// whose exit no longer ends the instance.
func (l *Loop) learnPingPID(oa *observed.App, inst *observed.Instance, pid int) {
	if pid != inst.PID {
		if _, err := l.exec.Watch(pid, inst.ID, observed.RoleLeader); err != nil {
			l.log.Warn("ping names a pid that is gone", "app", oa.ID, "pid", pid, "err", err)
			return
		}
		if inst.PID > 0 {
			_, _ = l.exec.Watch(inst.PID, inst.ID, observed.RoleLauncher)
			inst.Launcher, inst.LauncherPGID = inst.PID, inst.PGID
		}
		inst.PID = pid
		if g, st, err := l.exec.ProcStat(pid); err == nil {
			inst.PGID, inst.StartTime = g, st
		}
	}
	inst.PIDFromPing = true
}

// adoptByPing opens an instance for an app that pings while Patrol has none
// for it: it was started outside Patrol (or before this Patrol started).
func (l *Loop) adoptByPing(oa *observed.App, da *desired.App, pid int, now time.Time) {
	id := uuid.NewString()
	inst := &observed.Instance{
		ID: id, App: da, Revision: l.file.Revision(), Started: now, LastSeen: now,
		Adopted: true, PIDFromPing: pid > 0,
	}
	if pid > 0 {
		if st, err := l.exec.Watch(pid, id, observed.RoleLeader); err == nil {
			inst.PID, inst.StartTime = pid, st
			if g, _, err := l.exec.ProcStat(pid); err == nil {
				inst.PGID = g
			}
			inst.Signalable = da.PIDVerify && l.exec.VerifyBinary(pid, da.Binary) == nil
		} else {
			l.log.Warn("ping names a pid that is gone", "app", oa.ID, "pid", pid, "err", err)
		}
	}
	if !inst.Signalable {
		inst.PGID = 0 // never signal a pid nobody vouched for
	}
	oa.Instance = inst
	oa.Candidate = nil
	oa.Starts++
	l.tags[id] = oa.ID
	l.beginHealth(oa.ID, inst, now, false)
	l.log.Info("adopted by ping", "app", oa.ID, "pid", pid, "instance", id, "signalable", inst.Signalable)
	l.emit(schema.Event{Event: schema.EventAdopted, Group: schema.GroupApp, ID: oa.ID, PID: pid, InstanceID: id, Reason: schema.ReasonAdopted})
}

// newCAS returns a random start for a CAS counter, so that a CAS read
// before a Patrol restart is unlikely to match afterwards.
func newCAS() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])%100000 + 1
}

// countChange adds one to an entry's CAS if its visible state changed
// since it was last counted: at most one per request or pass.
func (l *Loop) countChange(eff *desired.State, k desired.Key) {
	switch k.Group {
	case schema.GroupApp:
		if oa := l.snap.Apps[k.ID]; oa != nil {
			l.digest = l.appDigest(l.digest[:0], eff, k.ID, oa)
			if string(l.digest) != oa.Digest {
				oa.Digest = string(l.digest)
				oa.CAS++
			}
		}
	case schema.GroupService:
		if os := l.snap.Services[k.ID]; os != nil {
			l.digest = l.serviceDigest(l.digest[:0], eff, k.ID, os)
			if string(l.digest) != os.Digest {
				os.Digest = string(l.digest)
				os.CAS++
			}
		}
	}
}

// appDigest appends to b a summary of what CAS counts for an app: its
// instance, pid, times, flags, history and key/value writes (seed §9.1).
// It runs on every commit (after every ping), so it appends rather than
// prints, and the summary is compared without a copy.
func (l *Loop) appDigest(b []byte, eff *desired.State, id string, oa *observed.App) []byte {
	if inst := oa.Instance; inst != nil {
		b = append(b, inst.ID...)
		b = appendInts(b, int64(inst.PID), inst.Started.UnixNano(), inst.LastSeen.UnixNano())
		b = appendBools(b, inst.RunOnce, inst.Stopping != nil)
		b = append(b, '|')
	}
	if da, ok := eff.App(id); ok {
		b = appendBools(b, eff.AppDisabled(da))
		b = append(b, '|')
	}
	ov := eff.Override(desired.Key{Group: schema.GroupApp, ID: id})
	b = appendBools(b, ov != nil && ov.RunOnce, oa.RestartRequested, oa.Pending != nil)
	b = appendInts(b, int64(len(oa.History)), int64(oa.KeyValueWrites), int64(len(oa.Runs)))
	if n := len(oa.History); n > 0 {
		b = append(b, oa.History[n-1].InstanceID...)
	}
	return b
}

func (l *Loop) serviceDigest(b []byte, eff *desired.State, id string, os *observed.Service) []byte {
	ov := eff.Override(desired.Key{Group: schema.GroupService, ID: id})
	disabled := false
	if ds, ok := eff.Service(id); ok {
		disabled = eff.ServiceDisabled(ds)
	}
	if inst := os.Instance; inst != nil {
		b = append(b, inst.ID...)
		b = appendInts(b, inst.Started.UnixNano(), inst.LastSeen.UnixNano())
		b = appendBools(b, inst.RunOnce)
		b = append(b, '|')
	}
	b = appendBools(b, disabled, ov != nil && ov.RunOnce, os.RestartRequested, os.Pending != nil)
	return appendInts(b, int64(len(os.History)), int64(os.KeyValueWrites))
}

// appendInts appends each of vs after a space.
func appendInts(b []byte, vs ...int64) []byte {
	for _, v := range vs {
		b = strconv.AppendInt(append(b, ' '), v, 10)
	}
	return b
}

// appendBools appends each of vs as " 1" or " 0".
func appendBools(b []byte, vs ...bool) []byte {
	for _, v := range vs {
		c := byte('0')
		if v {
			c = '1'
		}
		b = append(b, ' ', c)
	}
	return b
}

// service returns the observed service with id, creating it.
func (l *Loop) service(id string) *observed.Service {
	os := l.snap.Services[id]
	if os == nil {
		os = &observed.Service{ID: id}
		os.CAS = newCAS()
		if ds, ok := l.file.Service(id); ok {
			os.KeyValue = cloneKV(ds.KeyValue)
		}
		l.snap.Services[id] = os
	}
	return os
}

// cloneKV deep-copies key/value data (it is JSON, so a JSON round trip is
// exact; json.Number values survive).
func cloneKV(kv map[string]any) map[string]any {
	if len(kv) == 0 {
		return nil
	}
	b, err := json.Marshal(kv)
	if err != nil {
		return maps.Clone(kv)
	}
	var out map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return maps.Clone(kv)
	}
	return out
}

// The log streams of an app.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// ErrNoLog is the API error for an app that has no log file for a stream
// (it never started, or its output goes elsewhere).
const ErrNoLog = "No Log"

// LogFile returns the path of app id's newest log file for stream
// ("stdout" or "stderr"; with std-merge both are the merged file). The
// secret is checked as for an API change: log contents are not public
// for secret-protected apps. apiErr is a seed-style error string.
func (l *Loop) LogFile(ctx context.Context, id, stream, secret string) (path, apiErr string, err error) {
	err = l.read(ctx, func() {
		id = strings.ToLower(id)
		da, ok := l.file.App(id)
		if !ok {
			apiErr = schema.ErrUnknownApp
			return
		}
		if da.Secret != "" {
			if readOnly, msg := secretCheck(da.Secret, secret); readOnly || msg != "" {
				apiErr = schema.ErrSecretInvalid
				return
			}
		}
		oa := l.snap.Apps[id]
		if oa == nil {
			apiErr = ErrNoLog
			return
		}
		switch stream {
		case StreamStdout:
			path = oa.LastStdout
		case StreamStderr:
			path = oa.LastStderr
		default:
			apiErr = schema.ErrInvalidRequest
			return
		}
		if path == "" {
			apiErr = ErrNoLog
		}
	})
	return path, apiErr, err
}
