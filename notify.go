package patrol

import (
	"context"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// notifySystemd tells systemd (Type=notify) that Patrol is ready once the
// first reconcile pass is done, pets the watchdog while the loop answers
// (WATCHDOG_USEC), and says STOPPING=1 when the shutdown begins. Outside
// systemd (no NOTIFY_SOCKET) it does nothing.
func (p *Patrol) notifySystemd(ctx, stopping context.Context) {
	if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		p.log.Warn("sd_notify READY=1", "err", err)
	} else if !ok {
		return // not run by systemd with a notify socket
	}
	p.log.Info("told systemd: ready")
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		p.log.Warn("systemd watchdog", "err", err)
	}
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-tick:
			// The watchdog proves the loop answers, not just that the
			// process lives.
			qctx, cancel := context.WithTimeout(ctx, interval/2)
			_, err := p.loop.Status(qctx)
			cancel()
			if err != nil {
				p.log.Error("the loop did not answer; not petting the systemd watchdog", "err", err)
				continue
			}
			daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		case <-stopping.Done():
			daemon.SdNotify(false, daemon.SdNotifyStopping)
			return
		case <-ctx.Done():
			return
		}
	}
}
