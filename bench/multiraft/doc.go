// Command multiraft measures keel's raft.Host against dragonboat v3.3.8's
// NodeHost in one run: three hosts in one process on loopback TCP, each
// with a durable log shared by all its groups, G groups (1, 16, 64, 256 by
// default), 128-byte commands proposed synchronously by many clients to
// their group's leader. Each system is measured in a subprocess of its own
// (one per system and group count), so that memory and goroutines of one do
// not show in the other; the parent also measures the machine's limits
// (fsync of this disk, loopback TCP round trip) and prints a markdown
// table. See README.md.
package main
