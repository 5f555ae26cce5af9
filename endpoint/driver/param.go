package driver

import (
	"fmt"
	"os"
	"time"
)

// A Param is a typed handle on one argument of an endpoint type: its
// declaration (an Arg) and the Go type the type receives its value as. A
// type declares each argument once, as a Param, lists the Params' Args in
// its Spec, and reads the values in New with Get, converted and checked
// already. A misspelt Param is a compile error and the wrong Go type cannot
// be asked for; reading a Param the type's Spec does not declare panics,
// so the first test that makes the type finds it.
//
// The constructors (StringParam, PortParam, ...) fix the Kind; the methods
// Positional, Required, Default and the others return a changed copy, so
// that an argument shared by several types (a client's timeout=) is
// declared once and adjusted where it differs.
type Param[T any] struct {
	arg  Arg
	conv func(*Value) T
}

func param[T any](name, help string, k Kind, conv func(*Value) T) Param[T] {
	return Param[T]{arg: Arg{Name: name, Kind: k, Help: help}, conv: conv}
}

// StringParam declares a text argument, taken as written.
func StringParam(name, help string) Param[string] {
	return param(name, help, String, func(v *Value) string { return v.Str })
}

// HostParam declares a host name or IP address ([::1] in brackets is
// given without them).
func HostParam(name, help string) Param[string] {
	return param(name, help, Host, func(v *Value) string { return v.Str })
}

// IntParam declares a whole number; when max > min, it must be in
// [min, max].
func IntParam(name, help string, min, max int64) Param[int] {
	p := param(name, help, Int, func(v *Value) int { return int(v.Num) })
	p.arg.Min, p.arg.Max = min, max
	return p
}

// PortParam declares a TCP or UDP port number.
func PortParam(name, help string) Param[uint16] {
	return param(name, help, Port, func(v *Value) uint16 { return uint16(v.Num) })
}

// BoolParam declares a flag, written 0 or 1 as in Twisted.
func BoolParam(name, help string) Param[bool] {
	return param(name, help, Bool, func(v *Value) bool { return v.Num != 0 })
}

// ModeParam declares a file mode, in octal.
func ModeParam(name, help string) Param[os.FileMode] {
	return param(name, help, Mode, func(v *Value) os.FileMode { return os.FileMode(v.Num) })
}

// SecondsParam declares a duration in whole seconds, as Twisted's
// timeouts are.
func SecondsParam(name, help string) Param[time.Duration] {
	return param(name, help, Seconds, func(v *Value) time.Duration { return v.Dur })
}

// MillisParam declares a duration in whole milliseconds.
func MillisParam(name, help string) Param[time.Duration] {
	return param(name, help, Millis, func(v *Value) time.Duration { return v.Dur })
}

// ListParam declares the last positional argument as taking every
// positional segment left (exec:sh:-c:date); given by keyword, it is one
// value.
func ListParam(name, help string) Param[[]string] {
	p := param(name, help, String, func(v *Value) []string { return v.List })
	p.arg.Positional, p.arg.Variadic = true, true
	return p
}

// Arg returns the declaration, for a Spec's Args.
func (p Param[T]) Arg() Arg { return p.arg }

// Positional returns p as an argument that may also be given without its
// name, in its place among the Spec's positional arguments.
func (p Param[T]) Positional() Param[T] { p.arg.Positional = true; return p }

// Required returns p as an argument the string must give, not empty.
func (p Param[T]) Required() Param[T] { p.arg.Required = true; return p }

// Default returns p with a default, written as in an endpoint string; the
// registry checks it when the type registers.
func (p Param[T]) Default(text string) Param[T] { p.arg.Default = text; return p }

// DefaultFrom returns p taking, when absent, the value of the argument
// called name (see Arg.DefaultFrom).
func (p Param[T]) DefaultFrom(name string) Param[T] { p.arg.DefaultFrom = name; return p }

// EmptyDefault returns p with the empty string as its default (as the tcp
// server's interface has), rather than absent.
func (p Param[T]) EmptyDefault() Param[T] { p.arg.EmptyDefault = true; return p }

// Aliases returns p also accepting the given keywords.
func (p Param[T]) Aliases(names ...string) Param[T] {
	p.arg.Aliases = append([]string(nil), names...)
	return p
}

// Secret returns p as an argument no output may show (a password).
func (p Param[T]) Secret() Param[T] { p.arg.Secret = true; return p }

// Help returns p with another line of help, for a type where the shared
// argument means something more precise.
func (p Param[T]) Help(text string) Param[T] { p.arg.Help = text; return p }

// In reports whether spec declares p: an argument of p's name and kind.
// Code that several types share uses it to act only for the types whose
// Spec lists p.
func (p Param[T]) In(spec *Spec) bool {
	i := spec.argIndex(p.arg.Name)
	return i >= 0 && spec.Args[i].Kind == p.arg.Kind && spec.Args[i].Variadic == p.arg.Variadic
}

// Get returns the argument's value in a: as the string gave it, or its
// default, converted; T's zero value if it is absent (see Absent).
func (p Param[T]) Get(a *Args) T { return p.conv(a.value(&p.arg)) }

// Absent reports whether the argument is optional, was not given, and has
// no default.
func (p Param[T]) Absent(a *Args) bool { return a.value(&p.arg).Absent }

// Given reports whether the string gave the argument, rather than it
// taking its default.
func (p Param[T]) Given(a *Args) bool { return a.value(&p.arg).Given }

// Errorf returns an *Error about the argument, for checks a type makes
// beyond what its Kind does (a file that does not exist, two arguments
// that exclude each other). want completes "NAME "VALUE" is not ...".
func (p Param[T]) Errorf(a *Args, want string) error {
	v := a.value(&p.arg)
	return &Error{Op: "parse", Input: a.Input, Type: a.Spec.Name, Arg: p.arg.Name, Value: v.Text,
		Want: want, Err: ErrBadArgument}
}

// value finds the bound value of the declared argument arg. A type that
// reads an argument its Spec does not declare, or declares with another
// Kind, is wrong in a way no string can fix: that panics.
func (a *Args) value(arg *Arg) *Value {
	for i := range a.Values {
		if v := &a.Values[i]; v.Arg.Name == arg.Name {
			if v.Arg.Kind != arg.Kind || v.Arg.Variadic != arg.Variadic {
				panic(fmt.Sprintf("driver: type %s reads argument %s as %s, but its Spec declares it as %s",
					a.Spec.Name, arg.Name, arg.Kind, v.Arg.Kind))
			}
			return v
		}
	}
	panic(fmt.Sprintf("driver: type %s reads argument %s, which its Spec does not declare", a.Spec.Name, arg.Name))
}
