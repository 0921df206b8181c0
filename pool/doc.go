// Package pool is a pool of worker processes, the Go counterpart of
// Python's multiprocessing.Pool.
package pool
