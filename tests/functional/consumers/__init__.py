"""The consumer-contract suite: what Nova, Neutron and Ceilometer called on os-xenapi 0.3.4,
replayed against the simulator through XenAPISession as each consumer made it, checking the
types and values each relied on (``shared/reference/consumers-0.3.4.md``; issue 10)."""
