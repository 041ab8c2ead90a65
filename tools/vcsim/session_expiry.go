package main

// session_expiry.go: -expire-sessions-every ends every vSphere API (SOAP)
// session on a schedule, busy or idle, the way a vCenter restart or an
// administrator's "terminate all sessions" does. The stock simulator only
// drops sessions that were idle (-session-idle-timeout), which never hits a
// client in the middle of a long operation.
//
// A session ends exactly as SessionManager.TerminateSession ends it: the
// session and the objects it owns (container views, its property collector
// filters) are gone, and the client's next call finds itself logged out
// (NotAuthenticated, or property reads without values). REST (vAPI)
// sessions are not touched: the vAPI simulator's session map has no lock
// that an outside writer could take.

import (
	"fmt"
	"os"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// startSessionExpiry ends all SOAP sessions every `every` until the returned
// stop function is called. every <= 0 starts nothing.
func startSessionExpiry(every time.Duration) (stop func()) {
	if every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		ticker := time.NewTicker(every)
		defer ticker.Stop()
		for {
			select {
			case <-done:
				return
			case <-ticker.C:
				if n := expireAllSessions(); n > 0 {
					fmt.Fprintf(os.Stderr, "vcsim: expired %d session(s)\n", n)
				}
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// expireAllSessions terminates every SOAP session that exists now and
// returns how many it ended.
func expireAllSessions() int {
	// A session of no client: it lists all sessions (a session's view of the
	// SessionManager carries the session list) and is never among them, so
	// TerminateSession does not refuse to end "its own" session.
	self := &simulator.Session{
		UserSession: types.UserSession{Key: "vkube-harness-session-expiry"},
		Registry:    simulator.NewRegistry(),
	}
	sm := simulator.Map.SessionManager()
	view, ok := self.Get(sm.Reference()).(*simulator.SessionManager)
	if !ok {
		return 0
	}
	ctx := &simulator.Context{Session: self}
	n := 0
	for _, s := range view.SessionList {
		// One at a time: a session that logged out meanwhile is NotFound,
		// and a failed id must not stop the others.
		res := sm.TerminateSession(ctx, &types.TerminateSession{SessionId: []string{s.Key}})
		if res.Fault() == nil {
			n++
		}
	}
	return n
}
