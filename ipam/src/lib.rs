//! manul-ipam: Calico's block IPAM over the Datastore trait. (stub)
