package driver

import (
	"encoding/json"
	"fmt"
	"strings"
)

// ServerArgs parses a server endpoint string and returns its arguments with
// every default filled in, without making the endpoint (so no file is
// read). Its JSON form is what `tether describe` prints.
func ServerArgs(s string) (*Args, error) {
	_, args, err := BindServer(s)
	return args, err
}

// ClientArgs is ServerArgs for client endpoint strings.
func ClientArgs(s string) (*Args, error) {
	_, args, err := BindClient(s)
	return args, err
}

// BindServer parses a server endpoint string and binds it to its type's
// Spec: the type as registered, and the arguments (without Env) that its
// New takes. Every problem with the string is an *Error naming the
// argument. endpoint.Options.ParseServer is BindServer, then New.
func BindServer(s string) (*ServerType, *Args, error) {
	if err := checkNesting(s); err != nil {
		return nil, nil, err
	}
	t, args, err := bindServerNested(s)
	return t, args, withHint(err, s)
}

// bindServerNested is bindServer for a string whose nesting is checked
// already, as a wrapper's inner string is: checking each again would be
// quadratic.
func bindServerNested(s string) (*ServerType, *Args, error) {
	s = Unbracket(s) // a nested string may come in brackets: endpoint=[tcp:h:80]
	d, rest, err := parse(s, true)
	if err != nil {
		return nil, nil, err
	}
	t, known := lookupServer(d.Type)
	if t == nil {
		return nil, nil, unknownType(s, "server", d.Type, known)
	}
	args, err := bindTyped(s, rest, &t.Spec, "server", func(inner string) (*Args, error) {
		_, args, err := bindServerNested(inner)
		return args, err
	})
	return t, args, err
}

// BindClient is BindServer for client endpoint strings.
func BindClient(s string) (*ClientType, *Args, error) {
	if err := checkNesting(s); err != nil {
		return nil, nil, err
	}
	t, args, err := bindClientNested(s)
	return t, args, withHint(err, s)
}

// bindClientNested is bindServerNested for client strings.
func bindClientNested(s string) (*ClientType, *Args, error) {
	s = Unbracket(s) // a nested string may come in brackets: endpoint=[tcp:h:80]
	d, rest, err := parse(s, true)
	if err != nil {
		return nil, nil, err
	}
	t, known := lookupClient(d.Type)
	if t == nil {
		return nil, nil, unknownType(s, "client", d.Type, known)
	}
	args, err := bindTyped(s, rest, &t.Spec, "client", func(inner string) (*Args, error) {
		_, args, err := bindClientNested(inner)
		return args, err
	})
	return t, args, err
}

// bindTyped binds the arguments of s, whose type is spec and whose
// arguments begin at byte rest. A wrapper's arguments are its inner
// endpoint, bound by bindInner.
func bindTyped(s string, rest int, spec *Spec, role string, bindInner func(string) (*Args, error)) (*Args, error) {
	if spec.Wrapper {
		inner := s[rest:]
		if inner == "" {
			return nil, &Error{Op: "parse", Input: s, Type: spec.Name, Err: WrapError(ErrBadArgument, nil,
				"wants an inner endpoint after \""+spec.Name+":\", such as "+spec.Name+":tcp:8080")}
		}
		innerArgs, err := bindInner(inner)
		if err != nil {
			return nil, err
		}
		return &Args{Role: role, Input: s, Spec: spec, Inner: inner, InnerArgs: innerArgs}, nil
	}
	d, err := Parse(s)
	if err != nil {
		return nil, err
	}
	args, err := bind(s, spec, d)
	if err != nil {
		return nil, err
	}
	args.Role = role
	return args, nil
}

// MarshalJSON writes {"role":..., "type":..., "args":{...}} with the
// arguments in declaration order: numbers as numbers, flags as booleans,
// modes as octal strings ("0666"), absent optional values as null.
func (a *Args) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	field := func(k string, v any) {
		kb, _ := json.Marshal(k)
		vb, _ := json.Marshal(v)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('{')
	field("role", a.Role)
	b.WriteByte(',')
	field("type", a.Spec.Name)
	b.WriteString(`,"args":{`)
	for i, v := range a.Values {
		if i > 0 {
			b.WriteByte(',')
		}
		field(v.Arg.Name, v.JSONValue())
	}
	b.WriteByte('}')
	if a.InnerArgs != nil {
		inner, err := a.InnerArgs.MarshalJSON()
		if err != nil {
			return nil, err
		}
		b.WriteString(`,"inner":`)
		b.Write(inner)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

// JSONValue returns the value as `tether describe` shows it: a secret
// argument as "xxxxx", and text redacted (see Redact), as a value may be an
// endpoint string with a secret of its own.
func (v *Value) JSONValue() any {
	if v.Absent {
		return nil
	}
	if v.Arg.Secret {
		return redacted
	}
	if v.Arg.Variadic {
		if v.List == nil {
			return v.List
		}
		list := make([]string, len(v.List))
		for i, p := range v.List {
			list[i] = Redact(p)
		}
		return list
	}
	switch v.Arg.Kind {
	case Int, Port:
		return v.Num
	case Bool:
		return v.Num != 0
	case Mode:
		return fmt.Sprintf("%04o", v.Num)
	case Seconds:
		return int64(v.Dur.Seconds())
	case Millis:
		return v.Dur.Milliseconds()
	default:
		return Redact(v.Str)
	}
}
