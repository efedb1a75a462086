package cache

import (
	"sync/atomic"
	"time"
)

// tokenBucket is the rate limit of one secret: a bucket of burst tokens,
// refilled one per every, shared by every fetch of the secret. It is kept as
// one number, the generic cell rate algorithm's theoretical arrival time
// (tat): the instant the bucket would be full again if no token were taken
// meanwhile. So a slot carries 8 bytes and no allocation for it, where a
// rate.Limiter costs 88, and it needs no lock.
//
// Times are offsets from the cache's epoch on the cache's clock
// (Cache.sinceEpoch), so a fake clock drives it exactly.
type tokenBucket struct{ tat atomic.Int64 }

// reservation is a token taken by reserve, to give back with cancel.
type reservation struct{ tat int64 }

// reserve takes a token and returns how long to wait before using it.
func (b *tokenBucket) reserve(now, every time.Duration, burst int) (time.Duration, reservation) {
	for {
		old := b.tat.Load()
		t := max(old, int64(now))
		delay := time.Duration(t - int64(burst-1)*int64(every) - int64(now))
		if b.tat.CompareAndSwap(old, t+int64(every)) {
			return max(delay, 0), reservation{tat: t + int64(every)}
		}
	}
}

// take takes a token if one is available now and returns 0; otherwise it
// takes none and returns how long until one is.
func (b *tokenBucket) take(now, every time.Duration, burst int) time.Duration {
	for {
		old := b.tat.Load()
		t := max(old, int64(now))
		if delay := time.Duration(t - int64(burst-1)*int64(every) - int64(now)); delay > 0 {
			return delay
		}
		if b.tat.CompareAndSwap(old, t+int64(every)) {
			return 0
		}
	}
}

// cancel gives back the token of r if no token was taken after it (else the
// later one keeps its place, and r's token is lost: the limit only errs on the
// side of fewer fetches).
func (b *tokenBucket) cancel(r reservation, every time.Duration) {
	b.tat.CompareAndSwap(r.tat, r.tat-int64(every))
}
