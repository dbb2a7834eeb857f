package schema

import (
	"fmt"
	"reflect"
	"strconv"
	"sync"
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
	for _, f := range defaultsPlan(v.Type()) {
		fv := v.Field(f.index)
		switch f.kind {
		case planPointer:
			if fv.IsNil() {
				p := reflect.New(fv.Type().Elem())
				setScalar(p.Elem(), f.def)
				fv.Set(p)
			}
		case planValue:
			if fv.IsZero() {
				setScalar(fv, f.def)
			}
		case planBlock:
			if fv.IsNil() {
				if !f.holdsDefaults {
					continue
				}
				fv.Set(reflect.New(fv.Type().Elem()))
			}
			applyDefaults(fv.Elem())
		case planMap:
			for it := fv.MapRange(); it.Next(); {
				if e := it.Value(); !e.IsNil() {
					applyDefaults(e.Elem())
				}
			}
		}
	}
}

// fieldPlan is what applyDefaults does with one field of a struct type.
type fieldPlan struct {
	index         int
	kind          planKind
	def           string // the default tag (planPointer, planValue)
	holdsDefaults bool   // planBlock: the block type has defaults
}

type planKind uint8

const (
	planPointer planKind = iota // a pointer with a default
	planValue                   // a value with a default
	planBlock                   // a pointer to a struct (a nested block)
	planMap                     // a map of pointers to structs (apps, services)
)

// plans caches defaultsPlan by struct type: reading struct tags by
// reflection for every field of every app was most of ApplyDefaults' time.
var plans sync.Map // reflect.Type -> []fieldPlan

// defaultsPlan returns the fields of struct type t that applyDefaults
// visits, in order.
func defaultsPlan(t reflect.Type) []fieldPlan {
	if p, ok := plans.Load(t); ok {
		return p.([]fieldPlan)
	}
	var plan []fieldPlan
	for i := range t.NumField() {
		f := t.Field(i)
		def, hasDef := f.Tag.Lookup("default")
		switch {
		case hasDef && f.Type.Kind() == reflect.Pointer:
			plan = append(plan, fieldPlan{index: i, kind: planPointer, def: def})
		case hasDef:
			plan = append(plan, fieldPlan{index: i, kind: planValue, def: def})
		case f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct:
			// An optional block (a probe) stays absent when absent; its
			// defaults fill it when it is given.
			optional := f.Tag.Get("block") == "optional"
			plan = append(plan, fieldPlan{index: i, kind: planBlock, holdsDefaults: !optional && hasDefaults(f.Type.Elem())})
		case f.Type.Kind() == reflect.Map && f.Type.Elem().Kind() == reflect.Pointer &&
			f.Type.Elem().Elem().Kind() == reflect.Struct:
			plan = append(plan, fieldPlan{index: i, kind: planMap})
		}
	}
	plans.Store(t, plan)
	return plan
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
