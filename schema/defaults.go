package schema

import (
	"fmt"
	"reflect"
	"strconv"
)

// ApplyDefaults fills every absent setting of c with its default, as given
// by the default struct tags: a nil pointer or a zero value of a field with
// a default tag gets the default, and nil blocks that hold defaults are
// allocated. Apps and services are filled too. Defaults that depend on an
// entry's id or the config's location (name, log-directory,
// working-directory, service) are the loader's business, not this
// function's.
func ApplyDefaults(c *Config) {
	applyDefaults(reflect.ValueOf(c).Elem())
}

func applyDefaults(v reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		fv := v.Field(i)
		def, hasDef := f.Tag.Lookup("default")
		switch {
		case hasDef && fv.Kind() == reflect.Pointer:
			if fv.IsNil() {
				p := reflect.New(f.Type.Elem())
				setScalar(p.Elem(), def)
				fv.Set(p)
			}
		case hasDef:
			if fv.IsZero() {
				setScalar(fv, def)
			}
		case fv.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct:
			if fv.IsNil() {
				if !hasDefaults(f.Type.Elem()) {
					continue
				}
				fv.Set(reflect.New(f.Type.Elem()))
			}
			applyDefaults(fv.Elem())
		case fv.Kind() == reflect.Map && f.Type.Elem().Kind() == reflect.Pointer &&
			f.Type.Elem().Elem().Kind() == reflect.Struct:
			for _, k := range fv.MapKeys() {
				if e := fv.MapIndex(k); !e.IsNil() {
					applyDefaults(e.Elem())
				}
			}
		}
	}
}

// hasDefaults reports whether struct type t has a field with a default,
// directly or in a nested block.
func hasDefaults(t reflect.Type) bool {
	for i := range t.NumField() {
		f := t.Field(i)
		if _, ok := f.Tag.Lookup("default"); ok {
			return true
		}
		if f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct && hasDefaults(f.Type.Elem()) {
			return true
		}
	}
	return false
}

// setScalar sets v from the text of a default tag. The tags are part of
// this package, so a malformed one is a programming error; a test covers
// every tag.
func setScalar(v reflect.Value, s string) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			panic(fmt.Sprintf("schema: bad default %q for %s: %v", s, v.Type(), err))
		}
		v.SetInt(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			panic(fmt.Sprintf("schema: bad default %q for %s: %v", s, v.Type(), err))
		}
		v.SetFloat(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			panic(fmt.Sprintf("schema: bad default %q for %s: %v", s, v.Type(), err))
		}
		v.SetBool(b)
	default:
		panic(fmt.Sprintf("schema: default tag on unsupported type %s", v.Type()))
	}
}
