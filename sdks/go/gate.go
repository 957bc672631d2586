package flowmonkey

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// slotGate lets pulled tasks start when a slot is free, high priority first. A slot handed to a
// waiter is its own until it starts; a waiting task keeps sending in-progress acks.
type slotGate struct {
	mu          sync.Mutex
	concurrency int
	inFlight    int
	waiting     map[string][]chan struct{}
	room        chan struct{}
}

func newSlotGate(concurrency int) *slotGate {
	g := &slotGate{concurrency: concurrency, waiting: map[string][]chan struct{}{}, room: make(chan struct{})}
	close(g.room)
	return g
}

func (g *slotGate) running() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inFlight
}

// roomCh is closed while a slot is free (lanes wait on it before pulling).
func (g *slotGate) roomCh() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.room
}

func (g *slotGate) waiters() int {
	n := 0
	for _, q := range g.waiting {
		n += len(q)
	}
	return n
}

// enter returns once the task holds a slot.
func (g *slotGate) enter(priority string, msg jetstream.Msg, beat time.Duration) {
	g.mu.Lock()
	if g.inFlight < g.concurrency && g.waiters() == 0 {
		g.take()
		g.mu.Unlock()
		return
	}
	ready := make(chan struct{})
	g.waiting[priority] = append(g.waiting[priority], ready)
	g.mu.Unlock()
	t := time.NewTicker(beat)
	defer t.Stop()
	for {
		select {
		case <-ready:
			return
		case <-t.C:
			// Held, not started: keep it ours while it waits for a slot.
			_ = msg.InProgress()
		}
	}
}

// take counts a started task; the caller holds mu.
func (g *slotGate) take() {
	g.inFlight++
	if g.inFlight >= g.concurrency {
		g.room = make(chan struct{})
	}
}

// leave frees a slot: the highest-priority waiter takes it, else the lanes may pull again.
func (g *slotGate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inFlight--
	for _, p := range Priorities {
		if q := g.waiting[p]; len(q) > 0 {
			g.waiting[p] = q[1:]
			g.inFlight++
			close(q[0])
			return
		}
	}
	g.open()
}

// wake opens the gate for lanes waiting to pull (they then see the worker is stopping).
func (g *slotGate) wake() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open()
}

func (g *slotGate) open() {
	select {
	case <-g.room:
	default:
		close(g.room)
	}
}

// waitersNow is how many pulled tasks wait for a slot (tests).
func (g *slotGate) waitersNow() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiters()
}
