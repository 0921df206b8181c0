package pool

// Prefetched returns the number of chunks sent to a worker before the
// result of the one before had come back.
func Prefetched() int64 { return prefetched.Load() }
