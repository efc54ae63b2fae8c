//go:build !linux

package engine

import "time"

// sleep: PR_SET_TIMERSLACK is Linux's, so the pacer waits on its Go timer alone, as it does on
// Linux when prctl fails (up to a millisecond later per arrival: see coarseSlack).
func (p *pacer) sleep(time.Time, time.Duration) { p.fine = false }
