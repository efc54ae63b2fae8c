package preflight

// FDOverhead is fdOverhead, for the external tests of the forecast (they compile plans with
// loadgen/spec, which imports this package).
const FDOverhead = fdOverhead
