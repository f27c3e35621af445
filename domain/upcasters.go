package domain

import (
	"encoding/json"
	"fmt"
)

// Upcast converts the stored payload of an old event type (From) into the payload of its
// successor (To), so that events recorded by earlier builds keep their meaning.
type Upcast struct {
	From, To string
	Convert  func(old json.RawMessage) (json.RawMessage, error)
}

// Upcasters lists the conversions of every retired event type, for the event store's registry.
func Upcasters() []Upcast {
	return []Upcast{
		{From: "user.password_changed.v1", To: UserPasswordChanged{}.EventType(), Convert: impliedSessionEnds},
		{From: "tenant.member_role_changed.v1", To: TenantMemberRoleChanged{}.EventType(), Convert: impliedSessionEnds},
	}
}

// impliedSessionEnds marks a v1 password or role change as one that ended sessions by itself:
// v1 changes recorded no session.ended.v1 of their own.
func impliedSessionEnds(old json.RawMessage) (json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(old, &fields); err != nil {
		return nil, fmt.Errorf("implied session ends: %w", err)
	}
	fields["implies_session_ends"] = json.RawMessage("true")
	return json.Marshal(fields)
}
