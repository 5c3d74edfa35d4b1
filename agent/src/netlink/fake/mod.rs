//! A recording, in-memory fake of `Netlink` for unit tests of the CNI flow and the reconcilers.
//! No I/O. It models host links, pod interfaces keyed by (netns, ifname), proto-manul routes and
//! VXLAN devices with their neighbour and FDB entries (`vxlan`) with the same idempotence rules
//! as `RealNetlink`, records every call as a line of text, and
//! can fail the n-th call of a named method so that rollback paths can be exercised.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard, PoisonError},
};

use ipnet::IpNet;

mod vxlan;

use super::{
    FdbEntry, InterfaceAddresses, LinkDeletion, LinkInfo, Netlink, NetlinkError, PodInterface,
    PodInterfaceConfig, Route, RouteKey, RouteLookup, VethRequest, VxlanDevice, VxlanLink,
    VxlanNeighbour,
};

#[derive(Debug)]
struct FakeLink {
    info: LinkInfo,
    /// The pod end, for a veth made by `create_veth`.
    peer: Option<(PathBuf, String)>,
    /// The attributes of a VXLAN device (its `mtu` and `mac` are those of `info`).
    vxlan: Option<vxlan::FakeVxlan>,
    /// `enable_gro` was called on it.
    gro: bool,
}

#[derive(Debug)]
struct FakePod {
    interface: PodInterface,
    host: String,
}

#[derive(Debug, Default)]
struct FakeState {
    calls: Vec<String>,
    counts: BTreeMap<String, usize>,
    /// (method, call number counted from the start) to fail.
    failures: BTreeSet<(String, usize)>,
    next_index: u32,
    links: BTreeMap<String, FakeLink>,
    pods: BTreeMap<(PathBuf, String), FakePod>,
    gone_netns: BTreeSet<PathBuf>,
    /// Every route by key, with the protocol that wrote it ("manul" for manul's).
    routes: BTreeMap<RouteKey, (Route, String)>,
    default_route_mtu: Option<u32>,
    /// What `route_lookup` answers, by the longest matching prefix.
    lookups: BTreeMap<IpNet, RouteLookup>,
    /// What `interface_addresses` answers.
    interfaces: Vec<InterfaceAddresses>,
    /// Global addresses of host links set by `set_link_addresses`, by link name.
    link_addresses: BTreeMap<String, Vec<IpNet>>,
    /// Permanent neighbours by (device, ip).
    neighbours: BTreeMap<(String, IpAddr), [u8; 6]>,
    /// FDB entries by (device, mac): the destination.
    fdb: BTreeMap<(String, [u8; 6]), IpAddr>,
}

impl FakeState {
    /// Records the call; fails it when a failure was injected for it.
    fn call(&mut self, method: &str, line: String) -> Result<(), NetlinkError> {
        self.calls.push(line);
        let count = self.counts.entry(method.to_string()).or_default();
        *count += 1;
        if self.failures.remove(&(method.to_string(), *count)) {
            return Err(NetlinkError::Other(format!("injected failure in {method}")));
        }
        Ok(())
    }

    /// Indexes start at 2: 1 is lo.
    fn allocate_index(&mut self) -> u32 {
        self.next_index += 1;
        self.next_index + 1
    }

    fn namespace_gone(&self, netns: &Path) -> Option<NetlinkError> {
        self.gone_netns
            .contains(netns)
            .then(|| NetlinkError::Namespace {
                path: netns.display().to_string(),
                reason: "does not exist or is not a network namespace".to_string(),
            })
    }

    /// Removes a host link, its pod end and the routes, neighbours and FDB entries through it,
    /// like the kernel does.
    fn remove_link(&mut self, name: &str) {
        if let Some(link) = self.links.remove(name)
            && let Some(peer) = link.peer
        {
            self.pods.remove(&peer);
        }
        self.routes
            .retain(|_, (route, _)| !route.target.devices().any(|device| device == name));
        self.link_addresses.remove(name);
        self.neighbours.retain(|(device, _), _| device != name);
        self.fdb.retain(|(device, _), _| device != name);
    }

    /// Fails like the kernel when a device of the route does not exist.
    fn check_devices(&self, route: &Route) -> Result<(), NetlinkError> {
        match route
            .target
            .devices()
            .find(|device| !self.links.contains_key(*device))
        {
            Some(device) => Err(NetlinkError::Route {
                destination: route.destination.to_string(),
                reason: format!("no device {device}"),
            }),
            None => Ok(()),
        }
    }
}

/// `Route` as `ip route` would print it, for call lines.
pub fn describe_route(route: &Route) -> String {
    route.to_string()
}

/// Holds calls of one method until released (tests of races and cancellation).
#[derive(Debug)]
struct Gate {
    open: tokio::sync::Semaphore,
    arrived: std::sync::atomic::AtomicUsize,
}

/// In-memory `Netlink`. Every namespace path exists until `remove_netns` is called for it.
#[derive(Debug, Default)]
pub struct FakeNetlink {
    state: Mutex<FakeState>,
    gates: Mutex<BTreeMap<String, std::sync::Arc<Gate>>>,
}

impl FakeNetlink {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// From now on, calls of `method` wait until `open_gate(method)`.
    pub fn close_gate(&self, method: &str) {
        self.gates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                method.to_string(),
                std::sync::Arc::new(Gate {
                    open: tokio::sync::Semaphore::new(0),
                    arrived: std::sync::atomic::AtomicUsize::new(0),
                }),
            );
    }

    /// Lets every waiting and later call of `method` through.
    pub fn open_gate(&self, method: &str) {
        if let Some(gate) = self
            .gates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(method)
        {
            gate.open.close();
        }
    }

    /// How many calls of `method` are waiting or went through its closed gate.
    pub fn arrived_at_gate(&self, method: &str) -> usize {
        self.gates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(method)
            .map_or(0, |gate| {
                gate.arrived.load(std::sync::atomic::Ordering::SeqCst)
            })
    }

    async fn pass_gate(&self, method: &str) {
        let gate = self
            .gates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(method)
            .cloned();
        if let Some(gate) = gate {
            gate.arrived
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // Closed semaphore: the gate was opened.
            let _ = gate.open.acquire().await;
        }
    }

    /// Every call so far, e.g. "create_veth cali123 -> /run/netns/x eth0".
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Fails the next call of `method` (a `Netlink` method name).
    pub fn fail_on(&self, method: &str) {
        self.fail_on_nth(method, 1);
    }

    /// Fails the n-th call of `method` from now (1 is the next one).
    pub fn fail_on_nth(&self, method: &str, n: usize) {
        let mut state = self.lock();
        let done = state.counts.get(method).copied().unwrap_or(0);
        state.failures.insert((method.to_string(), done + n.max(1)));
    }

    /// Adds a link that manul does not own (an uplink, say) to the agent's namespace.
    pub fn add_link(&self, name: &str, mtu: u32) -> LinkInfo {
        let mut state = self.lock();
        let index = state.allocate_index();
        let info = LinkInfo {
            index,
            name: name.to_string(),
            mac: [0x02, 0, 0, 0, (index >> 8) as u8, index as u8],
            mtu,
            up: true,
            alias: None,
        };
        let link = FakeLink {
            info: info.clone(),
            peer: None,
            vxlan: None,
            gro: false,
        };
        state.links.insert(name.to_string(), link);
        info
    }

    /// Whether `enable_gro` was called on the link of that name (None: no such link).
    pub fn gro_enabled(&self, name: &str) -> Option<bool> {
        self.lock().links.get(name).map(|link| link.gro)
    }

    /// The namespace disappears with its interfaces, taking their host ends along.
    pub fn remove_netns(&self, netns: &Path) {
        let mut state = self.lock();
        state.gone_netns.insert(netns.to_path_buf());
        let keys: Vec<(PathBuf, String)> = state
            .pods
            .keys()
            .filter(|(path, _)| path == netns)
            .cloned()
            .collect();
        for key in keys {
            if let Some(pod) = state.pods.remove(&key) {
                state.remove_link(&pod.host);
            }
        }
    }

    /// Adds a host link named like manul's, with an owner alias (a leftover of another
    /// sandbox, or a link of an agent with another node name).
    pub fn add_owned_link(&self, name: &str, owner: Option<&str>) -> LinkInfo {
        self.add_link(name, 1500);
        let mut state = self.lock();
        let link = state.links.get_mut(name).map(|link| {
            link.info.alias = owner.map(str::to_string);
            link.info.clone()
        });
        link.unwrap_or_else(|| unreachable!("added above"))
    }

    /// Puts a route of another protocol (say "static" or "bird") in the kernel.
    pub fn add_foreign_route(&self, route: &Route, protocol: &str) {
        self.lock()
            .routes
            .insert(route.key(), (route.clone(), protocol.to_string()));
    }

    /// Puts a route of manul's in the kernel without recording a call (state left by an
    /// earlier run of the agent).
    pub fn preload_route(&self, route: &Route) {
        self.add_foreign_route(route, "manul");
    }

    /// Makes `route_lookup` of an address inside `prefix` answer `answer` (the longest matching
    /// prefix wins, as in the kernel).
    pub fn set_route_lookup(&self, prefix: IpNet, answer: Option<RouteLookup>) {
        let mut state = self.lock();
        match answer {
            Some(answer) => state.lookups.insert(prefix, answer),
            None => state.lookups.remove(&prefix),
        };
    }

    /// Makes `interface_addresses` answer `interfaces`.
    pub fn set_interface_addresses(&self, interfaces: Vec<InterfaceAddresses>) {
        self.lock().interfaces = interfaces;
    }

    pub fn set_default_route_mtu(&self, mtu: Option<u32>) {
        self.lock().default_route_mtu = mtu;
    }

    pub fn links(&self) -> Vec<LinkInfo> {
        self.lock()
            .links
            .values()
            .map(|link| link.info.clone())
            .collect()
    }

    /// manul's routes.
    pub fn routes(&self) -> Vec<Route> {
        self.lock()
            .routes
            .values()
            .filter(|(_, protocol)| protocol == "manul")
            .map(|(route, _)| route.clone())
            .collect()
    }

    /// Every route with its protocol.
    pub fn all_routes(&self) -> Vec<(Route, String)> {
        self.lock().routes.values().cloned().collect()
    }

    /// The global addresses `set_link_addresses` gave the host link `name`.
    pub fn link_addresses(&self, name: &str) -> Vec<IpNet> {
        self.lock()
            .link_addresses
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// (netns, ifname) of every pod interface.
    pub fn pod_interfaces(&self) -> Vec<(PathBuf, String)> {
        self.lock().pods.keys().cloned().collect()
    }
}

#[async_trait::async_trait]
impl Netlink for FakeNetlink {
    async fn link(&self, name: &str) -> Result<Option<LinkInfo>, NetlinkError> {
        let mut state = self.lock();
        state.call("link", format!("link {name}"))?;
        Ok(state.links.get(name).map(|link| link.info.clone()))
    }

    async fn links_with_prefix(&self, prefix: &str) -> Result<Vec<LinkInfo>, NetlinkError> {
        let mut state = self.lock();
        state.call("links_with_prefix", format!("links_with_prefix {prefix}"))?;
        Ok(state
            .links
            .values()
            .filter(|link| link.info.name.starts_with(prefix))
            .map(|link| link.info.clone())
            .collect())
    }

    async fn create_veth(&self, request: &VethRequest) -> Result<LinkInfo, NetlinkError> {
        self.pass_gate("create_veth").await;
        let mut state = self.lock();
        let netns = request.pod_netns.clone();
        let line = format!(
            "create_veth {} -> {} {}",
            request.host_name,
            netns.display(),
            request.pod_ifname
        );
        state.call("create_veth", line)?;
        let pod_key = (netns.clone(), request.pod_ifname.clone());
        let exists = |reason: &str| NetlinkError::Link {
            name: request.host_name.clone(),
            reason: format!("exists and {reason}"),
        };
        if let Some(link) = state.links.get_mut(&request.host_name) {
            if link.peer.as_ref() != Some(&pod_key) {
                return Err(exists("is not the peer of the pod's interface"));
            }
            link.info.up = true;
            return Ok(link.info.clone());
        }
        if let Some(error) = state.namespace_gone(&netns) {
            return Err(error);
        }
        if state.pods.contains_key(&pod_key) {
            return Err(NetlinkError::Link {
                name: request.host_name.clone(),
                reason: format!("creating veth: {} exists in the pod", request.pod_ifname),
            });
        }
        let host_index = state.allocate_index();
        let pod_index = state.allocate_index();
        let info = LinkInfo {
            index: host_index,
            name: request.host_name.clone(),
            mac: request.host_mac,
            mtu: request.mtu,
            up: true,
            alias: Some(request.owner.clone()),
        };
        let interface = PodInterface {
            index: pod_index,
            mac: request.pod_mac,
            mtu: request.mtu,
            addresses: Vec::new(),
            has_default_routes: false,
        };
        let host = request.host_name.clone();
        state
            .pods
            .insert(pod_key.clone(), FakePod { interface, host });
        let link = FakeLink {
            info: info.clone(),
            peer: Some(pod_key),
            vxlan: None,
            gro: false,
        };
        state.links.insert(request.host_name.clone(), link);
        Ok(info)
    }

    async fn enable_gro(&self, link: &LinkInfo) -> Result<bool, NetlinkError> {
        let mut state = self.lock();
        state.call("enable_gro", format!("enable_gro {}", link.name))?;
        match state
            .links
            .values_mut()
            .find(|known| known.info.index == link.index)
        {
            Some(known) => {
                known.gro = true;
                Ok(true)
            }
            None => Err(NetlinkError::Link {
                name: link.name.clone(),
                reason: format!("setting rx-gro on: no interface {}", link.index),
            }),
        }
    }

    async fn delete_link(
        &self,
        name: &str,
        owner: Option<&str>,
    ) -> Result<LinkDeletion, NetlinkError> {
        let mut state = self.lock();
        let line = match owner {
            Some(owner) => format!("delete_link {name} owner {owner}"),
            None => format!("delete_link {name}"),
        };
        state.call("delete_link", line)?;
        let Some(link) = state.links.get(name) else {
            return Ok(LinkDeletion::Gone);
        };
        if let (Some(owner), Some(alias)) = (owner, &link.info.alias)
            && owner != alias
        {
            return Ok(LinkDeletion::OwnedByOther(alias.clone()));
        }
        state.remove_link(name);
        Ok(LinkDeletion::Deleted)
    }

    async fn configure_pod_interface(
        &self,
        config: &PodInterfaceConfig,
    ) -> Result<PodInterface, NetlinkError> {
        self.pass_gate("configure_pod_interface").await;
        let mut state = self.lock();
        let addresses: Vec<String> = config.addresses.iter().map(IpNet::to_string).collect();
        let line = format!(
            "configure_pod_interface {} {} {}",
            config.netns.display(),
            config.ifname,
            addresses.join(",")
        );
        state.call("configure_pod_interface", line)?;
        if let Some(error) = state.namespace_gone(&config.netns) {
            return Err(error);
        }
        let key = (config.netns.clone(), config.ifname.clone());
        let Some(pod) = state.pods.get_mut(&key) else {
            return Err(NetlinkError::Link {
                name: config.ifname.clone(),
                reason: format!("missing in {}", config.netns.display()),
            });
        };
        pod.interface.addresses.clone_from(&config.addresses);
        pod.interface.has_default_routes = !config.addresses.is_empty();
        Ok(pod.interface.clone())
    }

    async fn pod_interface(
        &self,
        netns: &Path,
        ifname: &str,
    ) -> Result<Option<PodInterface>, NetlinkError> {
        let mut state = self.lock();
        let line = format!("pod_interface {} {ifname}", netns.display());
        state.call("pod_interface", line)?;
        let key = (netns.to_path_buf(), ifname.to_string());
        Ok(state.pods.get(&key).map(|pod| pod.interface.clone()))
    }

    async fn delete_pod_interface(&self, netns: &Path, ifname: &str) -> Result<(), NetlinkError> {
        let mut state = self.lock();
        let line = format!("delete_pod_interface {} {ifname}", netns.display());
        state.call("delete_pod_interface", line)?;
        let key = (netns.to_path_buf(), ifname.to_string());
        if let Some(pod) = state.pods.remove(&key) {
            state.remove_link(&pod.host);
        }
        Ok(())
    }

    async fn add_route(&self, route: &Route) -> Result<(), NetlinkError> {
        self.pass_gate("add_route").await;
        let mut state = self.lock();
        state.call("add_route", format!("add_route {route}"))?;
        state.check_devices(route)?;
        if state.routes.contains_key(&route.key()) {
            return Err(NetlinkError::RouteExists {
                destination: route.destination.to_string(),
            });
        }
        state
            .routes
            .insert(route.key(), (route.clone(), "manul".to_string()));
        Ok(())
    }

    async fn replace_route(&self, route: &Route) -> Result<(), NetlinkError> {
        let mut state = self.lock();
        state.call("replace_route", format!("replace_route {route}"))?;
        state.check_devices(route)?;
        state
            .routes
            .insert(route.key(), (route.clone(), "manul".to_string()));
        Ok(())
    }

    /// Like the kernel: a route of manul's with the same key and target goes; a route of
    /// another protocol never does.
    async fn delete_route(&self, route: &Route) -> Result<(), NetlinkError> {
        let mut state = self.lock();
        state.call("delete_route", format!("delete_route {route}"))?;
        if state
            .routes
            .get(&route.key())
            .is_some_and(|(present, protocol)| protocol == "manul" && present == route)
        {
            state.routes.remove(&route.key());
        }
        Ok(())
    }

    async fn manul_routes(&self, tables: &[u32]) -> Result<Vec<Route>, NetlinkError> {
        self.pass_gate("manul_routes").await;
        let mut state = self.lock();
        state.call("manul_routes", "manul_routes".to_string())?;
        Ok(state
            .routes
            .values()
            .filter(|(route, protocol)| {
                protocol == "manul"
                    && (route.table == super::MAIN_TABLE || tables.contains(&route.table))
            })
            .map(|(route, _)| route.clone())
            .collect())
    }

    async fn default_route_mtu(&self) -> Result<Option<u32>, NetlinkError> {
        let mut state = self.lock();
        state.call("default_route_mtu", "default_route_mtu".to_string())?;
        Ok(state.default_route_mtu)
    }

    async fn route_lookup(&self, destination: IpAddr) -> Result<Option<RouteLookup>, NetlinkError> {
        let mut state = self.lock();
        state.call("route_lookup", format!("route_lookup {destination}"))?;
        Ok(state
            .lookups
            .iter()
            .filter(|(prefix, _)| prefix.contains(&destination))
            .max_by_key(|(prefix, _)| prefix.prefix_len())
            .map(|(_, answer)| answer.clone()))
    }

    async fn interface_addresses(&self) -> Result<Vec<InterfaceAddresses>, NetlinkError> {
        let mut state = self.lock();
        state.call("interface_addresses", "interface_addresses".to_string())?;
        Ok(state.interfaces.clone())
    }

    async fn ensure_vxlan(&self, device: &VxlanDevice) -> Result<LinkInfo, NetlinkError> {
        let mut state = self.lock();
        state.call("ensure_vxlan", format!("ensure_vxlan {device}"))?;
        state.ensure_vxlan(device)
    }

    async fn set_link_addresses(
        &self,
        device: &str,
        addresses: &[IpNet],
    ) -> Result<(), NetlinkError> {
        let mut state = self.lock();
        let listed: Vec<String> = addresses.iter().map(IpNet::to_string).collect();
        let line = format!("set_link_addresses {device} {}", listed.join(","));
        state.call("set_link_addresses", line)?;
        if !state.links.contains_key(device) {
            return Err(NetlinkError::Link {
                name: device.to_string(),
                reason: "no such device".to_string(),
            });
        }
        state
            .link_addresses
            .insert(device.to_string(), addresses.to_vec());
        Ok(())
    }

    async fn vxlan_device(&self, name: &str) -> Result<Option<VxlanLink>, NetlinkError> {
        let mut state = self.lock();
        state.call("vxlan_device", format!("vxlan_device {name}"))?;
        state.vxlan_device(name)
    }

    async fn vxlan_neighbours(&self, device: &str) -> Result<Vec<VxlanNeighbour>, NetlinkError> {
        let mut state = self.lock();
        state.call("vxlan_neighbours", format!("vxlan_neighbours {device}"))?;
        Ok(state.vxlan_neighbours(device))
    }

    async fn replace_neighbour(
        &self,
        device: &str,
        neighbour: &VxlanNeighbour,
    ) -> Result<(), NetlinkError> {
        let mut state = self.lock();
        let line = format!("replace_neighbour {device} {neighbour}");
        state.call("replace_neighbour", line)?;
        state.replace_neighbour(device, neighbour)
    }

    async fn delete_neighbour(&self, device: &str, ip: IpAddr) -> Result<(), NetlinkError> {
        let mut state = self.lock();
        state.call(
            "delete_neighbour",
            format!("delete_neighbour {device} {ip}"),
        )?;
        state.neighbours.remove(&(device.to_string(), ip));
        Ok(())
    }

    async fn vxlan_fdb(&self, device: &str) -> Result<Vec<FdbEntry>, NetlinkError> {
        let mut state = self.lock();
        state.call("vxlan_fdb", format!("vxlan_fdb {device}"))?;
        Ok(state.vxlan_fdb(device))
    }

    async fn replace_fdb(&self, device: &str, entry: &FdbEntry) -> Result<(), NetlinkError> {
        let mut state = self.lock();
        state.call("replace_fdb", format!("replace_fdb {device} {entry}"))?;
        state.replace_fdb(device, entry)
    }

    async fn delete_fdb(&self, device: &str, entry: &FdbEntry) -> Result<(), NetlinkError> {
        let mut state = self.lock();
        state.call("delete_fdb", format!("delete_fdb {device} {entry}"))?;
        state.delete_fdb(device, entry);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::{HOST_SIDE_MAC, RouteTarget};

    #[tokio::test]
    async fn delete_link_leaves_a_link_of_another_owner() -> Result<(), NetlinkError> {
        let fake = FakeNetlink::new();
        fake.create_veth(&veth("cali1", "/run/netns/a")).await?;
        assert_eq!(
            fake.delete_link("cali1", Some("old")).await?,
            LinkDeletion::OwnedByOther("c1".into())
        );
        assert_eq!(fake.links().len(), 1);
        assert_eq!(
            fake.delete_link("cali1", Some("c1")).await?,
            LinkDeletion::Deleted
        );
        assert_eq!(fake.delete_link("cali1", None).await?, LinkDeletion::Gone);
        Ok(())
    }

    fn veth(host: &str, netns: &str) -> VethRequest {
        VethRequest {
            host_name: host.to_string(),
            owner: "c1".to_string(),
            host_mac: HOST_SIDE_MAC,
            pod_mac: [0x0a, 0x58, 0, 0, 0, 1],
            pod_netns: PathBuf::from(netns),
            pod_ifname: "eth0".to_string(),
            mtu: 1450,
        }
    }

    #[tokio::test]
    async fn create_veth_is_idempotent_for_the_same_pod_only() -> Result<(), NetlinkError> {
        let fake = FakeNetlink::new();
        let first = fake.create_veth(&veth("cali1", "/run/netns/a")).await?;
        assert_eq!(
            fake.create_veth(&veth("cali1", "/run/netns/a")).await?,
            first
        );
        assert!(
            fake.create_veth(&veth("cali1", "/run/netns/b"))
                .await
                .is_err()
        );
        assert!(
            fake.create_veth(&veth("cali2", "/run/netns/a"))
                .await
                .is_err()
        );
        assert_eq!(fake.calls()[0], "create_veth cali1 -> /run/netns/a eth0");
        Ok(())
    }

    #[tokio::test]
    async fn injected_failure_hits_the_nth_call_and_changes_nothing() -> Result<(), NetlinkError> {
        let fake = FakeNetlink::new();
        fake.create_veth(&veth("cali1", "/run/netns/a")).await?;
        fake.fail_on_nth("configure_pod_interface", 2);
        let config = PodInterfaceConfig {
            netns: PathBuf::from("/run/netns/a"),
            ifname: "eth0".to_string(),
            addresses: vec![
                "10.0.0.1/32"
                    .parse()
                    .map_err(|_| NetlinkError::Other("ip".into()))?,
            ],
        };
        assert!(
            fake.configure_pod_interface(&config)
                .await?
                .has_default_routes
        );
        assert!(fake.configure_pod_interface(&config).await.is_err());
        assert!(fake.configure_pod_interface(&config).await.is_ok());
        fake.fail_on("delete_link");
        assert!(fake.delete_link("cali1", None).await.is_err());
        assert_eq!(fake.links().len(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn deleting_either_end_or_the_netns_removes_the_pair_and_its_routes()
    -> Result<(), NetlinkError> {
        let fake = FakeNetlink::new();
        let netns = PathBuf::from("/run/netns/a");
        let route = Route::main(
            "10.0.0.1/32"
                .parse()
                .map_err(|_| NetlinkError::Other("ip".into()))?,
            RouteTarget::Device("cali1".to_string()),
        );
        fake.create_veth(&veth("cali1", "/run/netns/a")).await?;
        fake.add_route(&route).await?;
        assert!(matches!(
            fake.add_route(&route).await,
            Err(NetlinkError::RouteExists { .. })
        ));
        fake.replace_route(&route).await?;
        assert_eq!(fake.manul_routes(&[]).await?, vec![route.clone()]);
        fake.delete_pod_interface(&netns, "eth0").await?;
        assert!(fake.links().is_empty() && fake.routes().is_empty());
        assert!(fake.replace_route(&route).await.is_err());
        fake.delete_route(&route).await?;
        fake.create_veth(&veth("cali1", "/run/netns/a")).await?;
        fake.remove_netns(&netns);
        assert!(fake.links().is_empty());
        assert_eq!(fake.pod_interface(&netns, "eth0").await?, None);
        assert!(
            fake.create_veth(&veth("cali1", "/run/netns/a"))
                .await
                .is_err()
        );
        Ok(())
    }
}
