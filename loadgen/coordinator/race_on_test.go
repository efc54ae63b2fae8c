//go:build race

package coordinator

// raceDetector: the tests run under -race, which slows every goroutine several times over and
// unevenly. Searches against a server of known capacity measure the machine's timing; they run
// without it (.ci/run's timing step).
const raceDetector = true
