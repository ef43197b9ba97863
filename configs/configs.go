// Package configs embeds the default configuration so the binary runs without a file.
package configs

import _ "embed"

// Default is configs/mall.yaml as built into the binary.
//
//go:embed mall.yaml
var Default []byte
