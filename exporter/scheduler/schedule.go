package scheduler

import (
	"hash/fnv"
	"time"
)

// offset returns the stable position of a check inside its interval,
// derived from the module and target, so load spreads evenly and a restart
// keeps every target's rhythm.
func offset(module, target string, interval time.Duration) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(module))
	h.Write([]byte{0})
	h.Write([]byte(target))
	return time.Duration(h.Sum64() % uint64(interval))
}

// nextSlot returns the first planned time at or after now for a check with
// the given interval and offset. Slots are fixed points on the Unix time
// line (k*interval + offset), so they never drift however late checks run.
func nextSlot(now time.Time, interval, off time.Duration) time.Time {
	n := now.UnixNano()
	p := int64(interval)
	o := int64(off)
	rem := (n - o) % p
	if rem < 0 {
		rem += p
	}
	if rem == 0 {
		return time.Unix(0, n)
	}
	return time.Unix(0, n-rem+p)
}
