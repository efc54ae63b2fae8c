package preflight

// readKernel names the system; Windows has no descriptor limit to read (FDSoft, FDHard stay -1).
func readKernel(h *Host) { h.Kernel = "windows" }
