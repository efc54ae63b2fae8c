//go:build !linux

package engine

import "time"

// sleep: the kernel timer is Linux's timerfd, so the pacer waits on its Go timer alone, as it does on
// Linux when prctl fails (up to a millisecond later per arrival: see coarseSlack).
func (p *pacer) sleep(time.Time) { p.fine = false }

type kernelTimer struct{}

func (kernelTimer) close() {}
