package desired

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/patrolhq/patrol/schema"
)

// MaxConfigSize bounds the size of a config file, in bytes.
const MaxConfigSize = 16 << 20

// maxDepth bounds the nesting of a config document, so that no input can
// exhaust the stack of the recursive parser.
const maxDepth = 64

type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindObject
	kindArray
)

var kindNames = [...]string{
	kindNull:   "null",
	kindBool:   "a boolean",
	kindNumber: "a number",
	kindString: "a string",
	kindObject: "an object",
	kindArray:  "an array",
}

// node is one parsed JSON value. Unlike a decode into map[string]any it keeps
// the order of object keys and sees duplicate keys, so that every problem
// can be reported with its path.
type node struct {
	kind kind
	text string // a string's value or a number's literal
	b    bool
	keys []string // object keys, in document order
	vals []*node  // object values (parallel to keys) or array elements
}

// parser builds nodes from a json.Decoder's tokens.
type parser struct {
	dec  *json.Decoder
	data []byte
	errs *problems
}

// parse parses a whole document: exactly one JSON value and nothing after it
// but whitespace. Syntax errors end parsing and are returned; duplicate keys
// are recorded in errs and parsing goes on.
func parse(data []byte, errs *problems) (*node, error) {
	p := &parser{dec: json.NewDecoder(bytes.NewReader(data)), data: data, errs: errs}
	p.dec.UseNumber()
	n, err := p.value("", 0)
	if err != nil {
		return nil, err
	}
	if _, err := p.dec.Token(); !errors.Is(err, io.EOF) {
		line, col := position(data, p.dec.InputOffset())
		return nil, fmt.Errorf("unexpected data after the end of the config at line %d, column %d", line, col)
	}
	return n, nil
}

func (p *parser) value(path string, depth int) (*node, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%s: nested more than %d levels deep", displayPath(path), maxDepth)
	}
	tok, err := p.dec.Token()
	if err != nil {
		return nil, p.syntax(err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return p.object(path, depth)
		case '[':
			return p.array(path, depth)
		}
		// A closing delimiter where a value belongs; the decoder reports
		// those itself, but be safe.
		line, col := position(p.data, p.dec.InputOffset())
		return nil, fmt.Errorf("invalid JSON at line %d, column %d: unexpected %q", line, col, rune(t))
	case string:
		return &node{kind: kindString, text: t}, nil
	case json.Number:
		return &node{kind: kindNumber, text: string(t)}, nil
	case bool:
		return &node{kind: kindBool, b: t}, nil
	case nil:
		return &node{kind: kindNull}, nil
	}
	return nil, fmt.Errorf("invalid JSON: unexpected token %v", tok)
}

func (p *parser) object(path string, depth int) (*node, error) {
	n := &node{kind: kindObject}
	seen := map[string]int{}
	for {
		tok, err := p.dec.Token()
		if err != nil {
			return nil, p.syntax(err)
		}
		if d, ok := tok.(json.Delim); ok && d == '}' {
			return n, nil
		}
		key, ok := tok.(string)
		if !ok {
			return nil, p.syntax(fmt.Errorf("object key is not a string"))
		}
		kp := joinKey(path, key)
		v, err := p.value(kp, depth+1)
		if err != nil {
			return nil, err
		}
		if i, dup := seen[key]; dup {
			p.errs.add(kp, "duplicate key (the last one would silently win)")
			n.vals[i] = v
			continue
		}
		seen[key] = len(n.keys)
		n.keys = append(n.keys, key)
		n.vals = append(n.vals, v)
	}
}

func (p *parser) array(path string, depth int) (*node, error) {
	n := &node{kind: kindArray}
	for p.dec.More() {
		v, err := p.value(joinIndex(path, len(n.vals)), depth+1)
		if err != nil {
			return nil, err
		}
		n.vals = append(n.vals, v)
	}
	if _, err := p.dec.Token(); err != nil { // the closing ']'
		return nil, p.syntax(err)
	}
	return n, nil
}

// syntax turns a decoder error into one that names the line and column.
func (p *parser) syntax(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := position(p.data, se.Offset)
		return fmt.Errorf("invalid JSON at line %d, column %d: %s", line, col, strings.TrimPrefix(se.Error(), "json: "))
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("invalid JSON: unexpected end of file")
	}
	line, col := position(p.data, p.dec.InputOffset())
	return fmt.Errorf("invalid JSON at line %d, column %d: %v", line, col, err)
}

// position converts a byte offset into a 1-based line and column.
func position(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// plainKey reports whether an object key needs no quoting in a path:
// ^[A-Za-z0-9$][A-Za-z0-9_$-]*$. A loop, not a regexp: every key of a
// config goes through it (a fifth of loading 1,000 apps as a regexp).
func plainKey(key string) bool {
	if key == "" {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '$':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// joinKey extends a JSON path with an object key: apps.web, or
// apps["my app"] for keys that are not plain.
func joinKey(path, key string) string {
	if !plainKey(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func joinIndex(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

func displayPath(path string) string {
	if path == "" {
		return "config"
	}
	return path
}

// structInfo maps the JSON keys of a struct type to its fields.
type structInfo struct {
	keys  []string       // in field order
	byKey map[string]int // key -> field index
}

var structInfos sync.Map // reflect.Type -> *structInfo

func infoOf(t reflect.Type) *structInfo {
	if si, ok := structInfos.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{byKey: map[string]int{}}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		si.keys = append(si.keys, name)
		si.byKey[name] = i
	}
	structInfos.Store(t, si)
	return si
}

// decoder fills typed values from nodes, recording every problem instead of
// stopping at the first.
type decoder struct {
	errs *problems
}

var (
	rawMessageType = reflect.TypeFor[json.RawMessage]()
	dependencyType = reflect.TypeFor[schema.Dependency]()
	rlimitType     = reflect.TypeFor[schema.RlimitSpec]()
	quantityType   = reflect.TypeFor[schema.Quantity]()
)

// decode stores n into v (settable), recording type mismatches and unknown
// keys under path.
func (d *decoder) decode(n *node, v reflect.Value, path string) {
	if v.Type() == rawMessageType {
		if n.kind == kindNull {
			return
		}
		raw, err := json.Marshal(n.toAny())
		if err != nil {
			d.errs.addBad(path, err.Error())
			return
		}
		v.SetBytes(raw)
		return
	}
	if (v.Type() == rlimitType || v.Type() == quantityType) && n.kind == kindNumber {
		// A JSON number is one value for both limits.
		v.SetString(n.text)
		return
	}
	if v.Type() == dependencyType && n.kind != kindObject {
		// depends-on's short form: "db" is {"app": "db"}.
		if d.expect(n, kindString, path, "an app id or an object") {
			v.FieldByName("App").SetString(n.text)
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if n.kind == kindNull {
			d.expect(n, kindObject, path, describeType(v.Type().Elem()))
			return
		}
		p := reflect.New(v.Type().Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		if !d.expect(n, kindObject, path, "an object") {
			return
		}
		d.decodeStruct(n, v, path)
	case reflect.Map:
		if !d.expect(n, kindObject, path, "an object") {
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.keys))
		et := v.Type().Elem()
		for i, k := range n.keys {
			kp := joinKey(path, k)
			ev := reflect.New(et).Elem()
			d.decode(n.vals[i], ev, kp)
			m.SetMapIndex(reflect.ValueOf(k), ev)
		}
		v.Set(m)
	case reflect.Slice:
		if !d.expect(n, kindArray, path, "an array of "+plural(v.Type().Elem())) {
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.vals), len(n.vals))
		for i, e := range n.vals {
			d.decode(e, s.Index(i), joinIndex(path, i))
		}
		v.Set(s)
	case reflect.Interface:
		if a := n.toAny(); a != nil {
			v.Set(reflect.ValueOf(a))
		}
	case reflect.String:
		if d.expect(n, kindString, path, "a string") {
			v.SetString(n.text)
		}
	case reflect.Bool:
		if d.expect(n, kindBool, path, "true or false") {
			v.SetBool(n.b)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !d.expect(n, kindNumber, path, "an integer") {
			return
		}
		i, ok := integer(n.text)
		if !ok {
			d.errs.addBad(path, "must be an integer, got "+n.text)
			return
		}
		if v.OverflowInt(i) {
			d.errs.addBad(path, "is out of range: "+n.text)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if !d.expect(n, kindNumber, path, "a non-negative integer") {
			return
		}
		i, ok := integer(n.text)
		if !ok || i < 0 {
			d.errs.addBad(path, "must be a non-negative integer, got "+n.text)
			return
		}
		if v.OverflowUint(uint64(i)) {
			d.errs.addBad(path, "is out of range: "+n.text)
			return
		}
		v.SetUint(uint64(i))
	case reflect.Float32, reflect.Float64:
		if !d.expect(n, kindNumber, path, "a number") {
			return
		}
		f, err := strconv.ParseFloat(n.text, 64)
		if err != nil || math.IsInf(f, 0) {
			d.errs.addBad(path, "is out of range: "+n.text)
			return
		}
		v.SetFloat(f)
	default:
		d.errs.addBad(path, "unsupported type "+v.Type().String())
	}
}

func (d *decoder) decodeStruct(n *node, v reflect.Value, path string) {
	si := infoOf(v.Type())
	for i, k := range n.keys {
		kp := joinKey(path, k)
		fi, ok := si.byKey[k]
		if !ok {
			msg, suggested := unknownKey(k, si)
			d.errs.addBad(kp, msg)
			if suggested != "" && !slices.Contains(n.keys, suggested) {
				// "binnary" already says binary is missing; don't also
				// report "binary: required".
				d.errs.markBad(joinKey(path, suggested))
			}
			continue
		}
		d.decode(n.vals[i], v.Field(fi), kp)
	}
}

// expect records a type mismatch unless n is of kind k.
func (d *decoder) expect(n *node, k kind, path, want string) bool {
	if n.kind == k {
		return true
	}
	got := kindNames[n.kind]
	if n.kind == kindString {
		got += " " + strconv.Quote(clip(n.text, 40))
	} else if n.kind == kindNumber {
		got += " " + clip(n.text, 40)
	}
	d.errs.addBad(path, "must be "+want+", got "+got)
	return false
}

// integer parses a JSON number that holds an integer, such as 15, 15.0 or
// 1e3.
func integer(s string) (int64, bool) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}

// describeType names what a value of type t must be, for messages.
func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice:
		return "an array of " + plural(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "an integer"
}

func plural(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "strings"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integers"
	case reflect.Float32, reflect.Float64:
		return "numbers"
	}
	return "values"
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// toAny converts n to the value encoding/json would produce with UseNumber.
func (n *node) toAny() any {
	switch n.kind {
	case kindBool:
		return n.b
	case kindNumber:
		return json.Number(n.text)
	case kindString:
		return n.text
	case kindObject:
		m := make(map[string]any, len(n.keys))
		for i, k := range n.keys {
			m[k] = n.vals[i].toAny()
		}
		return m
	case kindArray:
		a := make([]any, len(n.vals))
		for i, e := range n.vals {
			a[i] = e.toAny()
		}
		return a
	}
	return nil
}

// unknownKey describes an unknown key, with a hint when it is close to a
// known one or belongs somewhere else.
func unknownKey(key string, si *structInfo) (msg, suggested string) {
	msg = "unknown key"
	if best := closest(key, si.keys); best != "" {
		return msg + `, did you mean "` + best + `"?`, best
	}
	if elsewhere := wrongPlace(key); elsewhere != "" {
		return msg + " (" + elsewhere + ")", ""
	}
	return msg, ""
}

// closest returns the known key nearest to key, if it is near enough to be
// a likely typo: the same ignoring case, "_" for "-", or a small edit
// distance.
func closest(key string, known []string) string {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "_", "-") }
	nk := norm(key)
	best, bestD := "", math.MaxInt
	for _, k := range known {
		if norm(k) == nk {
			return k
		}
		d := levenshtein(nk, norm(k))
		if d < bestD {
			best, bestD = k, d
		}
	}
	limit := 2
	if len(key) > 12 {
		limit = 3
	}
	if bestD <= limit && bestD < len(nk) {
		return best
	}
	return ""
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// keyHomes lists, for hints, which block each key belongs to.
var keyHomes = sync.OnceValue(func() map[string][]string {
	homes := map[string][]string{}
	add := func(t reflect.Type, where string) {
		for _, k := range infoOf(t).keys {
			if k == "x" || k == "$schema" || k == "hooks" || k == "name" {
				continue
			}
			homes[k] = append(homes[k], where)
		}
	}
	add(reflect.TypeFor[configType](), "a top-level key")
	add(reflect.TypeFor[appType](), `an app key: it goes inside "apps": {"<id>": {...}}`)
	add(reflect.TypeFor[serviceType](), `a service key: it goes inside "services": {"<id>": {...}}`)
	add(reflect.TypeFor[httpType](), `an "http" key: it goes inside "http": {...}`)
	add(reflect.TypeFor[udpType](), `a "udp" key: it goes inside "udp": {...}`)
	add(reflect.TypeFor[backoffType](), `a "backoff" key: it goes inside "backoff": {...}`)
	add(reflect.TypeFor[hooksType](), `a "hooks" key: it goes inside "hooks": {...}`)
	add(reflect.TypeFor[retentionType](), `a "log-retention" key: it goes inside "log-retention": {...}`)
	add(reflect.TypeFor[kvLimitsType](), `a "keyvalue-limits" key: it goes inside "keyvalue-limits": {...}`)
	add(reflect.TypeFor[schema.Probe](), `a probe key: it goes inside "liveness", "readiness" or "startup": {...}`)
	add(reflect.TypeFor[schema.Dependency](), `a depends-on key: it goes inside "depends-on": [{...}]`)
	for _, v := range homes {
		sort.Strings(v)
	}
	return homes
})

// wrongPlace says where a key that is unknown in one block belongs
// instead, if it is known elsewhere.
func wrongPlace(key string) string {
	homes := keyHomes()[key]
	if len(homes) == 0 {
		return ""
	}
	return strconv.Quote(key) + " is " + strings.Join(homes, ", or ")
}
