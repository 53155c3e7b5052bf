package filesnap

import "encoding/binary"

var le = binary.LittleEndian
