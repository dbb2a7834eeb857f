package api

import (
	"context"
	"log/slog"
	"net"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/patrolhq/patrol/schema"
)

// BatchBackend is a Backend that can apply several requests in one visit to
// the supervisor's loop. RequestBatch applies reqs in order, as Request
// would one after the other, and returns one answer per request; a non-nil
// error means none was answered.
type BatchBackend interface {
	Backend
	RequestBatch(ctx context.Context, reqs []*schema.Request, via schema.Transport) ([]*schema.Response, error)
}

// UDP batching: with a BatchBackend on a UDP socket, each of udpBatchReaders
// readers takes every datagram waiting on the socket (up to udpBatch) in one
// system call (recvmmsg), applies the requests in one visit to the loop and
// sends the replies in one system call (sendmmsg). Under load that is one
// hand-off to the loop and back per batch instead of per datagram; with
// one datagram waiting it is the same path as before.
const (
	udpBatchReaders = 4
	udpBatch        = 32
)

// batchConn is the batch I/O of golang.org/x/net's ipv4 and ipv6
// PacketConns (their Message types are the same type).
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// newBatchConn returns the batch I/O for uc: ipv4 for an IPv4 socket, ipv6
// otherwise (a dual-stack socket bound to "::" included).
func newBatchConn(uc *net.UDPConn) batchConn {
	if a, ok := uc.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() != nil {
		return ipv4.NewPacketConn(uc)
	}
	return ipv6.NewPacketConn(uc)
}

// serveBatches is ServeUDPWith's body for a BatchBackend on a UDP socket.
// ctx is cancelled when the readers must stop; cancel stops them all.
func serveBatches(ctx context.Context, cancel context.CancelFunc, uc *net.UDPConn, b BatchBackend, log *slog.Logger, token func() string, observe func(bool)) error {
	bc := newBatchConn(uc)
	return runReaders(ctx, cancel, udpBatchReaders, func() func() (func(), error) {
		r := newBatchReader()
		return func() (func(), error) {
			n, err := bc.ReadBatch(r.in, 0)
			return func() { r.serve(ctx, bc, b, log, token, observe, n) }, err
		}
	})
}

// batchReader is one reader's buffers, reused for every batch.
type batchReader struct {
	in   []ipv4.Message // udpBatch messages, each with its own buffer
	reqs []*schema.Request
	from []net.Addr
	out  []ipv4.Message
}

func newBatchReader() *batchReader {
	r := &batchReader{in: make([]ipv4.Message, udpBatch)}
	for i := range r.in {
		// One byte more than the largest request, to see that a datagram
		// was cut short (the read truncates it) rather than exactly that
		// long.
		r.in[i].Buffers = [][]byte{make([]byte, schema.MaxUDPRequest+1)}
	}
	return r
}

// serve answers the first n messages of r.in, or stays silent on each as
// handleUDP does.
func (r *batchReader) serve(ctx context.Context, bc batchConn, b BatchBackend, log *slog.Logger, token func() string, observe func(bool), n int) {
	r.reqs, r.from, r.out = r.reqs[:0], r.from[:0], r.out[:0]
	for i := range n {
		m := &r.in[i]
		req, refusal := decodeDatagram(log, token, m.Buffers[0][:m.N], m.Addr)
		switch {
		case req != nil:
			r.reqs = append(r.reqs, req)
			r.from = append(r.from, m.Addr)
		case refusal != nil:
			r.out = append(r.out, ipv4.Message{Buffers: [][]byte{refusal}, Addr: m.Addr})
		default:
			observe(false)
		}
	}
	if len(r.reqs) > 0 {
		rctx, cancel := context.WithTimeout(ctx, udpTimeout)
		resps, err := b.RequestBatch(rctx, r.reqs, schema.TransportUDP)
		cancel()
		for i, req := range r.reqs {
			var resp *schema.Response
			if err == nil && i < len(resps) {
				resp = resps[i]
			}
			reply := replyTo(log, r.from[i], req, resp, err)
			if reply == nil {
				observe(false)
				continue
			}
			r.out = append(r.out, ipv4.Message{Buffers: [][]byte{reply}, Addr: r.from[i]})
		}
	}
	// sendmmsg sends a prefix of the replies; a reply it cannot send
	// (k == 0 or an error at the head) is logged and skipped, and the rest
	// is sent on.
	for sent := 0; sent < len(r.out); {
		k, err := bc.WriteBatch(r.out[sent:], 0)
		if err != nil || k == 0 {
			log.Warn("udp reply not sent", "to", addrString(r.out[sent].Addr), "err", err)
			observe(false)
			sent++
			continue
		}
		for range k {
			observe(true)
		}
		sent += k
	}
}
