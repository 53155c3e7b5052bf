package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// limits are the machine's: what one fsync of this disk and one loopback
// TCP round trip cost.
type limits struct {
	FsyncOps  float64       // write+fsync of 128 bytes, per second, one at a time
	FsyncP50  time.Duration // latency of one write+fsync
	LoopRTT50 time.Duration // 128 bytes there and back over loopback TCP
}

// measureFsync appends 128 bytes and fsyncs, one after the other, for d,
// in a file in dir.
func measureFsync(dir string, d time.Duration) (float64, time.Duration, error) {
	f, err := os.CreateTemp(dir, "fsync-*")
	if err != nil {
		return 0, 0, fmt.Errorf("fsync probe: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 128)
	var lat []time.Duration
	start := time.Now()
	for time.Since(start) < d {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			return 0, 0, fmt.Errorf("fsync probe: write %s: %w", f.Name(), err)
		}
		if err := f.Sync(); err != nil {
			return 0, 0, fmt.Errorf("fsync probe: fsync %s: %w", f.Name(), err)
		}
		lat = append(lat, time.Since(t0))
	}
	el := time.Since(start)
	slices.Sort(lat)
	return float64(len(lat)) / el.Seconds(), lat[len(lat)/2], nil
}

// measureLoopback sends 128 bytes to an echo server on 127.0.0.1 and
// reads them back, n times, and returns the median round trip.
func measureLoopback(n int) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("loopback probe: listen: %w", err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(c, c)
		served <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, fmt.Errorf("loopback probe: dial: %w", err)
	}
	buf := make([]byte, 128)
	lat := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return 0, fmt.Errorf("loopback probe: write: %w", err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			c.Close()
			return 0, fmt.Errorf("loopback probe: read: %w", err)
		}
		lat = append(lat, time.Since(t0))
	}
	c.Close()
	if err := <-served; err != nil {
		return 0, fmt.Errorf("loopback probe: echo: %w", err)
	}
	slices.Sort(lat)
	return lat[len(lat)/2], nil
}

func measureLimits(dir string, fsyncFor time.Duration) (limits, error) {
	var l limits
	var err error
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return l, fmt.Errorf("limits: %w", err)
	}
	if l.FsyncOps, l.FsyncP50, err = measureFsync(filepath.Clean(dir), fsyncFor); err != nil {
		return l, err
	}
	if l.LoopRTT50, err = measureLoopback(5000); err != nil {
		return l, err
	}
	return l, nil
}
