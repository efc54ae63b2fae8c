//go:build race

package metrics

// raceDetector: under -race sync.Pool drops a quarter of what it is given, on purpose, so the
// pool's allocation figures hold only without it.
const raceDetector = true
