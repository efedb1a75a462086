//go:build race

package cache

// raceEnabled: the race detector slows the fleet simulation 20-fold; it
// checks arithmetic of schedules, not concurrency, so it runs without it.
const raceEnabled = true
