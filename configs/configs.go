// Package configs embeds the default configuration so the binary runs without a file.
package configs

import _ "embed"

// Default is configs/mall.yaml as built into the binary: production-safe defaults.
//
//go:embed mall.yaml
var Default []byte

// Development is configs/development.yaml: the development settings that make run, the
// bench and the tests merge over Default explicitly (config.LoadDev).
//
//go:embed development.yaml
var Development []byte
