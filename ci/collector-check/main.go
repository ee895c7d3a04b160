// Validates SigNoz collector config files as `otelcol validate` does, short of building
// the exporters: each file is resolved (with ${env:...}), unmarshalled into the SigNoz
// collector's own component factories and checked, without starting anything. Built by ci/check-collector-config.sh
// in a throw-away module that requires the collector at a pinned version.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/SigNoz/signoz-otel-collector/components"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/xconfmap"
	"go.opentelemetry.io/collector/otelcol"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: validate CONFIG.yaml...")
		os.Exit(2)
	}
	factories, err := components.Components()
	if err != nil {
		fmt.Fprintln(os.Stderr, "components:", err)
		os.Exit(1)
	}
	settings := otelcol.CollectorSettings{
		Factories: func() (otelcol.Factories, error) { return factories, nil },
		BuildInfo: component.BuildInfo{Command: "validate", Version: "check"},
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				URIs:              os.Args[1:],
				ProviderFactories: []confmap.ProviderFactory{envprovider.NewFactory(), fileprovider.NewFactory()},
			},
		},
	}
	// What `otelcol validate` (Collector.DryRun) does, less its last step, which builds
	// the exporters: SigNoz's ClickHouse exporters dial ClickHouse when they are built,
	// and none runs here. Unknown fields, bad values and pipelines naming missing
	// components are all caught before that step.
	provider, err := otelcol.NewConfigProvider(settings.ConfigProviderSettings)
	if err != nil {
		fmt.Fprintln(os.Stderr, "config provider:", err)
		os.Exit(1)
	}
	cfg, err := provider.Get(context.Background(), factories)
	if err != nil {
		fmt.Fprintln(os.Stderr, "invalid:", err)
		os.Exit(1)
	}
	if err := xconfmap.Validate(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "invalid:", err)
		os.Exit(1)
	}
	fmt.Println("valid:", os.Args[1:])
}
