package api

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// UDP server limits. A request holds a reader for at most udpTimeout: the
// loop answers in microseconds, so a slow answer means the loop is busy and
// the client, which retries anyway, is better served by silence than by a
// late reply.
const (
	udpReaders = 16
	udpTimeout = 5 * time.Second
)

// ServeUDP serves the UDP API (seed §11.8) on conn until ctx is done, then
// waits for the requests in flight and returns nil; conn stays open, the
// caller closes it. One datagram is one request, decoded by DecodeRequest
// and applied with b.Request over schema.TransportUDP. A valid answer is
// sent back to the sender as compact JSON without history, keyvalue and
// errors; a datagram over schema.MaxUDPRequest bytes, one that is not a
// request, an answer with the seed's errors and a backend failure get no
// reply at all, as in the seed. The refusals Patrol added, a missing or
// wrong token and a key/value write over the limits, are answered with
// {"id","group","errors"} (see UDPErrorReply), so that a sender learns
// why. Unlike the seed, which shut Patrol down when a reply could not be
// sent, reply errors are only logged.
//
// With a BatchBackend on a *net.UDPConn (Patrol's case), four readers each
// take all the datagrams waiting at once and answer them in one visit to
// the loop (udpbatch.go). Otherwise sixteen long-lived readers share the
// socket; each reads a datagram, answers it and reads the next. A request the loop is slow to answer
// holds one reader, not the socket; when all are busy the kernel's socket
// buffer absorbs the burst (and drops the excess, as UDP may), and memory
// stays bounded whatever the senders do. Readers that live on (rather
// than a goroutine per datagram) keep the hot path free of goroutine
// creation and stack growth, and several requests waiting at once reach
// the loop together, which serves them in one pass.
func ServeUDP(ctx context.Context, conn net.PacketConn, b Backend, log *slog.Logger) error {
	return ServeUDPWith(ctx, conn, b, UDPOptions{Log: log})
}

// UDPOptions configures ServeUDPWith.
type UDPOptions struct {
	// Log receives the server's logs; nil discards them.
	Log *slog.Logger
	// Observe, when set, is called for every datagram: true when it was
	// answered, false when it was dropped (too large, not a request,
	// refused, or not answered).
	Observe func(answered bool)
	// Token returns the current http.token, called for every request; ""
	// or a nil Token means none. With a token, a request that NeedsToken
	// must carry it in its "token" field, or it is refused with an
	// "Unauthorized" error reply and never reaches the backend.
	Token func() string
}

// ServeUDPWith is ServeUDP with options.
func ServeUDPWith(ctx context.Context, conn net.PacketConn, b Backend, opts UDPOptions) error {
	observe, log := opts.Observe, opts.Log
	if observe == nil {
		observe = func(bool) {}
	}
	tok := opts.Token
	if tok == nil {
		tok = func() string { return "" }
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// A read deadline in the past unblocks the readers when ctx ends, or
	// when one of them fails; unlike closing conn, it leaves conn to its
	// owner. Any earlier deadline is cleared first, so a timeout can only
	// mean that the readers were told to stop.
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		return fmt.Errorf("serve udp: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	if uc, ok := conn.(*net.UDPConn); ok {
		if bb, ok := b.(BatchBackend); ok {
			return serveBatches(ctx, cancel, uc, bb, log, tok, observe)
		}
	}

	return runReaders(ctx, cancel, udpReaders, func() func() (func(), error) {
		// One byte more than the largest request, to see that a datagram
		// was cut short (the read truncates it) rather than exactly that
		// long.
		buf := make([]byte, schema.MaxUDPRequest+1)
		return func() (func(), error) {
			n, addr, err := conn.ReadFrom(buf)
			return func() { observe(handleUDP(ctx, conn, b, log, tok, buf[:n], addr)) }, err
		}
	})
}

// runReaders runs n readers until ctx ends or a read fails, and returns the
// first read error. newReader makes one reader's read function; each call
// of it reads, and returns the read's error and a function that answers
// what was read, which the reader calls unless the read failed or ctx
// ended meanwhile. A failed read stops all the readers.
func runReaders(ctx context.Context, cancel context.CancelFunc, n int, newReader func() func() (answer func(), err error)) error {
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for range n {
		wg.Go(func() {
			read := newReader()
			for {
				answer, err := read()
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("read udp request: %w", err) })
					cancel()
					return
				}
				answer()
			}
		})
	}
	wg.Wait()
	return firstErr
}

// handleUDP answers one datagram (as read into a buffer one byte larger
// than the largest request), or stays silent; it reports whether it
// answered.
func handleUDP(ctx context.Context, conn net.PacketConn, b Backend, log *slog.Logger, token func() string, data []byte, addr net.Addr) bool {
	req, reply := decodeDatagram(log, token, data, addr)
	if req != nil {
		ctx, cancel := context.WithTimeout(ctx, udpTimeout)
		resp, err := b.Request(ctx, req, schema.TransportUDP)
		cancel()
		reply = replyTo(log, addr, req, resp, err)
	}
	if reply == nil {
		return false
	}
	if _, err := conn.WriteTo(reply, addr); err != nil {
		log.Warn("udp reply not sent", "to", addrString(addr), "err", err)
		return false
	}
	return true
}

// decodeDatagram decodes a datagram into a request for the backend. A
// datagram over schema.MaxUDPRequest bytes or not a request is logged and
// dropped (nil, nil); a request that needs the token (NeedsToken) and does
// not carry it is refused with its error reply (nil, reply).
func decodeDatagram(log *slog.Logger, token func() string, data []byte, from net.Addr) (*schema.Request, []byte) {
	if len(data) > schema.MaxUDPRequest {
		log.Debug("udp request dropped: too large", "from", addrString(from), "max", schema.MaxUDPRequest)
		return nil, nil
	}
	req, err := DecodeRequest(data)
	if err != nil {
		log.Debug("udp request dropped", "from", addrString(from), "err", err)
		return nil, nil
	}
	if !NeedsToken(req) {
		return req, nil // pings and reads: no token to look up
	}
	if want := token(); want != "" && !validToken(req.Token, want) {
		log.Warn("udp request refused: missing or wrong token", "from", addrString(from), "app", req.ID, "group", req.Group)
		return nil, UDPErrorReply(req, []string{schema.ErrUnauthorized})
	}
	return req, nil
}

// repliedErrors are the errors a UDP request is answered with (see
// ServeUDP); the seed's own errors stay silent.
var repliedErrors = map[string]bool{
	schema.ErrUnauthorized:        true,
	schema.ErrKeyValueTooDeep:     true,
	schema.ErrKeyValueTooLarge:    true,
	schema.ErrKeyValueTooManyKeys: true,
}

// replyTo encodes the reply to req, answered with resp or err; nil, after
// logging why, when it gets none: no answer, a refusal with the seed's
// errors, or a reply that cannot be encoded.
func replyTo(log *slog.Logger, from net.Addr, req *schema.Request, resp *schema.Response, err error) []byte {
	switch {
	case err != nil || resp == nil:
		log.Debug("udp request not answered", "from", addrString(from), "err", err)
		return nil
	case len(resp.Errors) > 0:
		log.Debug("udp request refused", "from", addrString(from), "app", req.ID, "errors", resp.Errors)
		for _, e := range resp.Errors {
			if repliedErrors[e] {
				return UDPErrorReply(req, resp.Errors)
			}
		}
		return nil
	}
	reply, err := UDPReply(resp)
	if err != nil {
		log.Error("udp reply not encoded", "from", addrString(from), "err", err)
		return nil
	}
	return reply
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// UDPReply encodes resp as the UDP API sends it: compact JSON, no trailing
// newline, without history, keyvalue and errors (seed §11.8), and of the
// health only "health" and "ready" (probe messages, STATUS= and the last
// failure would make a datagram an app reads into a small buffer large).
func UDPReply(resp *schema.Response) ([]byte, error) {
	r := *resp
	r.History, r.KeyValue, r.Errors = nil, nil, nil
	r.Probes, r.StatusText, r.HealthFailure, r.HealthFailureAt, r.WatchdogUntil, r.ReadySince, r.Limits = nil, "", "", "", "", "", ""
	b, err := schema.AppendResponseCompactJSON(nil, &r)
	if err != nil {
		return nil, fmt.Errorf("encode udp reply: %w", err)
	}
	return b, nil
}

// UDPErrorReply encodes the answer to a refused UDP request: compact JSON
// with the request's id and group as sent, and the errors, such as
// {"id":"web","group":"app","errors":["Unauthorized"]}.
func UDPErrorReply(req *schema.Request, errs []string) []byte {
	b, err := schema.AppendResponseCompactJSON(nil, &schema.Response{ID: req.ID, Group: req.Group, Errors: errs})
	if err != nil {
		// Only strings: it always encodes.
		panic("api: encode a udp error reply: " + err.Error())
	}
	return b
}
