package content

import (
	"net/http"

	"github.com/ferry-k8s/ferry/images/registry"
)

// registryHandler is the pull-only registry over the Service. Requests and
// digest failures are counted by the Service's own middleware and reader,
// the same for the registry and the yum routes, so the registry's
// OnRequest and OnReadError callbacks are not needed (the registry logs
// failed reads itself).
func (s *Service) registryHandler() http.Handler {
	return registry.New(s, registry.Options{Log: s.log})
}
