package config

import "github.com/vantageprobe/vantage/internal/yamldoc"

// DefaultClusterConfig holds the cluster defaults.
var DefaultClusterConfig = ClusterConfig{Replicas: 1}

// ClusterConfig configures how the exporters of one location share its
// targets when they run as a cluster (--cluster.listen-address); without a
// cluster it has no effect.
type ClusterConfig struct {
	// Replicas is how many live members check each target: 1 splits the
	// targets among the members, more checks each target from that many
	// members (redundancy inside the location).
	Replicas int `yaml:"replicas"`
	// ExpectedMembers is how many members the location should have; it is
	// exposed as vantage_cluster_expected_members for the alert on a
	// location running below its size. 0: not set.
	ExpectedMembers int `yaml:"expected_members,omitempty"`
}

// UnmarshalYAML sets the cluster defaults before decoding.
func (c *ClusterConfig) UnmarshalYAML(unmarshal func(any) error) error {
	*c = DefaultClusterConfig
	type plain ClusterConfig
	return unmarshal((*plain)(c))
}

func (c *ClusterConfig) validate(path []any) error {
	switch {
	case c.Replicas < 1:
		return yamldoc.Fail(yamldoc.At(path, "replicas"), "replicas must be at least 1, got %d", c.Replicas)
	case c.ExpectedMembers < 0:
		return yamldoc.Fail(yamldoc.At(path, "expected_members"), "expected_members must not be negative, got %d", c.ExpectedMembers)
	}
	return nil
}
