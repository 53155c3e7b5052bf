// Package peers benchmarks Apply throughput of keel against other Go Raft
// libraries (hashicorp/raft, etcd-io/raft), measured the same way in one run
// on one machine. It is a separate module so that keel's own module does not
// depend on its peers. The benchmarks are in the _test.go files; see
// README.md.
package peers
