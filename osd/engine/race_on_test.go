//go:build race

package engine

// raceEnabled lowers the default crash iterations under the race
// detector, which slows the engine about tenfold.
const raceEnabled = true
