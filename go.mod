module github.com/keelraft/raft

go 1.25

require (
	github.com/anishathalye/porcupine v1.3.1
	github.com/hashicorp/go-msgpack/v2 v2.1.5
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
)

require go.yaml.in/yaml/v3 v3.0.5 // indirect
