package schema

import _ "embed"

// JSONSchema is the JSON Schema (draft 2020-12) of config.json, generated
// from these types by go generate; `patrol schema` prints it.
//
//go:embed config.schema.json
var JSONSchema []byte
