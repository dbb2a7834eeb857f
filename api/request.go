package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// Limits of a GET /api/ query. The seed had none; these are far above what
// any real request needs (an id is at most 63 bytes, a secret 128).
const (
	maxQueryParams = 32
	maxQueryValue  = 1024
)

// maxTTL bounds a request's ttl so that it fits a time.Duration (about 292
// years).
var maxTTL = time.Duration(math.MaxInt64).Seconds()

// DecodeRequest decodes one API request: a POST /api/ body or a UDP
// datagram. Like the seed's encoding/json decoding it ignores unknown keys,
// matches keys without regard to case, and decodes null as an empty
// request (which the loop answers with "Unknown Group"). Anything that is
// not one JSON value, a value of the wrong type (an object is needed, a
// toggle must fit 0-255, a pid 32 bits) or trailing data is an *Error
// "Invalid Request"; a negative ttl, or one too long for a time.Duration,
// is "Invalid TTL".
func DecodeRequest(data []byte) (*schema.Request, error) {
	var req schema.Request
	if err := json.Unmarshal(data, &req); err != nil {
		return nil, newError(http.StatusBadRequest, schema.ErrInvalidRequest, fmt.Errorf("decode request: %w", err))
	}
	if err := checkTTL(float64(req.TTL)); err != nil {
		return nil, err
	}
	return &req, nil
}

// ParseQuery turns the query of GET /api/ into a request (seed §11.4).
// It reads id, group, secret, toggle (decimal 0-7, 0 meaning none), history
// (true when present, whatever its value, as in the seed), cas (unsigned
// decimal), ttl (seconds, or a Go duration such as "30s"), replicas
// (decimal) and clear (true when present). ping, pid and keyvalue cannot be sent by GET, as in the
// seed; unknown parameters are ignored, and of a repeated parameter the
// first value counts. Errors are *Error: "Invalid Request" for more than 32
// values or a name or value over 1024 bytes, "Invalid Toggle",
// "Invalid CAS" and "Invalid TTL" for values that do not parse. Unlike the
// seed, which read a bad toggle or cas as none and cut toggle=259 down to
// 3, every bad value is refused.
func ParseQuery(v url.Values) (*schema.Request, error) {
	n := 0
	for k, vs := range v {
		n += max(len(vs), 1)
		if len(k) > maxQueryValue {
			return nil, newError(http.StatusBadRequest, schema.ErrInvalidRequest, fmt.Errorf("parse query: parameter name of %d bytes", len(k)))
		}
		for _, s := range vs {
			if len(s) > maxQueryValue {
				return nil, newError(http.StatusBadRequest, schema.ErrInvalidRequest, fmt.Errorf("parse query: %q has a value of %d bytes", k, len(s)))
			}
		}
	}
	if n > maxQueryParams {
		return nil, newError(http.StatusBadRequest, schema.ErrInvalidRequest, fmt.Errorf("parse query: %d parameters", n))
	}
	req := &schema.Request{
		ID:      v.Get("id"),
		Group:   v.Get("group"),
		Secret:  v.Get("secret"),
		History: v.Has("history"),
		Clear:   v.Has("clear"),
	}
	if v.Has("toggle") {
		t, err := strconv.ParseUint(v.Get("toggle"), 10, 8)
		if err != nil || t > uint64(schema.ToggleEnableRunOnceDisable) {
			return nil, newError(http.StatusBadRequest, schema.ErrInvalidToggle, fmt.Errorf("parse query: toggle %q", v.Get("toggle")))
		}
		req.Toggle = schema.Toggle(t)
	}
	if v.Has("cas") {
		c, err := strconv.ParseUint(v.Get("cas"), 10, 64)
		if err != nil {
			return nil, newError(http.StatusBadRequest, schema.ErrInvalidCAS, fmt.Errorf("parse query: cas: %w", err))
		}
		req.CAS = c
	}
	if v.Has("replicas") {
		n, err := strconv.ParseUint(v.Get("replicas"), 10, 16)
		if err != nil {
			return nil, newError(http.StatusBadRequest, schema.ErrInvalidReplicas, fmt.Errorf("parse query: replicas %q", v.Get("replicas")))
		}
		req.Replicas = int(n)
	}
	if v.Has("ttl") {
		ttl, err := parseTTL(v.Get("ttl"))
		if err != nil {
			return nil, err
		}
		req.TTL = schema.Seconds(ttl)
	}
	return req, nil
}

// parseTTL parses a query's ttl: a number of seconds or a Go duration.
func parseTTL(s string) (float64, error) {
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil {
		d, derr := time.ParseDuration(s)
		if derr != nil {
			return 0, newError(http.StatusBadRequest, schema.ErrInvalidTTL, fmt.Errorf("parse ttl %q: neither seconds nor a duration", s))
		}
		secs = d.Seconds()
	}
	if err := checkTTL(secs); err != nil {
		return 0, err
	}
	return secs, nil
}

// checkTTL refuses a ttl that is negative, not a number, or too long for a
// time.Duration.
func checkTTL(secs float64) error {
	if math.IsNaN(secs) || secs < 0 || secs >= maxTTL {
		return newError(http.StatusBadRequest, schema.ErrInvalidTTL, errors.New("ttl must be between 0 and 292 years"))
	}
	return nil
}
