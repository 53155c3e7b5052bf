package filesnap

import "os"

func exampleDir() string {
	d, err := os.MkdirTemp("", "filesnap-example")
	if err != nil {
		panic(err)
	}
	return d
}
