// Package schema holds Patrol's wire types: the keys of config.json, the
// HTTP and UDP API request, response, status and history JSON, the plan
// JSON, the typed enums (keepalive, management, toggles, states, reasons)
// and the defaults and ranges of every setting.
//
// The package has no behaviour beyond describing data: it imports nothing
// from the rest of Patrol, so every other package can depend on it. Config
// struct tags carry the rules that the loader (package desired) enforces and
// that the generated JSON Schema (config.schema.json) publishes:
//
//   - json: the key, exactly as the original Patrol spelled it;
//   - validate: validator/v10 rules, plus Patrol's own rule names
//     (rng, maxbytes, cleanpath, workdir, signal, layout, hostport, ...);
//   - default: the value used when the key is absent (or 0 for the seed's
//     integer keys, where 0 has always meant "use the default").
//
// The doc comment of every config field is its user-facing description: the
// generator copies it into the JSON Schema and the README's config reference.
package schema

//go:generate go run ../internal/schemagen -schema config.schema.json -readme ../README.md
