package mq

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestErrorsPublic: a public package's user sees its prefix once and its
// sentinels, never the engine's bare messages; ctx errors pass unchanged.
func TestErrorsPublic(t *testing.T) {
	e := NewErrors("pkg")
	assert.Equal(t, "pkg: closed", e.Closed.Error())
	assert.Same(t, e.Closed, e.Public(ErrClosed), "a bare sentinel becomes the package's")
	assert.Nil(t, e.Public(nil))
	assert.Same(t, context.Canceled, e.Public(context.Canceled), "ctx.Err() is returned as is")

	cause := errors.New("cause")
	err := e.Public(fmt.Errorf("%w: 5 bytes: %w", ErrTooLarge, cause))
	assert.Equal(t, "pkg: item too large: 5 bytes: cause", err.Error())
	assert.ErrorIs(t, err, e.TooLarge, "the package's sentinel")
	assert.ErrorIs(t, err, cause, "and what the engine wrapped")
	assert.NotErrorIs(t, err, e.Closed)

	err = e.Public(fmt.Errorf("send: %w", cause))
	assert.Equal(t, "pkg: send: cause", err.Error(), "other engine errors get the prefix")
	assert.Equal(t, "pkg: refused", e.Public(errors.New("pkg: refused")).Error(), "a hook's error keeps its one prefix")
}
