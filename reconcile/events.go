package reconcile

import (
	"context"
	"sync"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// subscriberQueue is how many events a subscriber may lag behind before
// events are dropped for it (it is then told how many).
const subscriberQueue = 1024

// Bus fans lifecycle events out to subscribers (the SSE stream, the GUI,
// hooks). Publish never blocks: a subscriber that falls behind loses
// events and gets an EventDropped with their count, so supervision never
// waits for a slow reader.
type Bus struct {
	mu   sync.Mutex
	seq  uint64
	subs map[*subscriber]struct{}
}

type subscriber struct {
	ch      chan schema.Event
	pings   bool
	dropped int
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{subs: map[*subscriber]struct{}{}} }

// Publish numbers and timestamps ev and hands it to every subscriber.
func (b *Bus) Publish(ev schema.Event, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	ev.Seq = b.seq
	ev.Time = now.Format(time.RFC3339Nano)
	for s := range b.subs {
		if ev.Event == schema.EventPinged && !s.pings {
			continue
		}
		if s.dropped > 0 {
			select {
			case s.ch <- schema.Event{Seq: ev.Seq, Time: ev.Time, Event: schema.EventDropped, Count: s.dropped}:
				s.dropped = 0
			default:
				s.dropped++
				continue
			}
		}
		select {
		case s.ch <- ev:
		default:
			s.dropped++
		}
	}
}

// Subscribe returns a channel of the events published from now on, closed
// when ctx ends. pings asks for EventPinged too.
func (b *Bus) Subscribe(ctx context.Context, pings bool) <-chan schema.Event {
	s := &subscriber{ch: make(chan schema.Event, subscriberQueue), pings: pings}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	go func() {
		<-ctx.Done()
		b.mu.Lock()
		delete(b.subs, s)
		close(s.ch)
		b.mu.Unlock()
	}()
	return s.ch
}
