//! Unit tests of the fake's VXLAN rules (the ones `netlink_vxlan.rs` checks against the kernel).

use std::net::IpAddr;

use crate::netlink::{
    FdbEntry, LinkDeletion, Netlink, NetlinkError, NextHop, Route, RouteTarget, VXLAN_DEVICE_V4,
    VXLAN_PORT, VXLAN_VNI, VxlanDevice, VxlanNeighbour, fake::FakeNetlink,
};

const MAC: [u8; 6] = [0x66, 0, 0, 0, 0, 1];
const REMOTE_MAC: [u8; 6] = [0x66, 0, 0, 0, 0, 2];

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

fn device() -> VxlanDevice {
    VxlanDevice {
        name: VXLAN_DEVICE_V4.to_string(),
        vni: VXLAN_VNI,
        port: VXLAN_PORT,
        local: ip("10.0.0.1"),
        parent: Some("eth0".to_string()),
        mtu: 1450,
        mac: MAC,
    }
}

/// A fake with eth0 (mtu 1500) and vxlan.calico over it, one neighbour, one FDB entry and a
/// route through it.
async fn populated() -> Result<FakeNetlink, NetlinkError> {
    let fake = FakeNetlink::new();
    fake.add_link("eth0", 1500);
    fake.ensure_vxlan(&device()).await?;
    let neighbour = VxlanNeighbour {
        ip: ip("10.244.1.0"),
        mac: REMOTE_MAC,
    };
    fake.replace_neighbour(VXLAN_DEVICE_V4, &neighbour).await?;
    let entry = FdbEntry {
        mac: REMOTE_MAC,
        destination: ip("10.0.1.1"),
    };
    fake.replace_fdb(VXLAN_DEVICE_V4, &entry).await?;
    fake.replace_route(&tunnel_route()).await?;
    Ok(fake)
}

fn tunnel_route() -> Route {
    let destination = "10.244.1.0/26".parse().unwrap_or_default();
    Route::main(
        destination,
        RouteTarget::via(vec![NextHop {
            gateway: ip("10.244.1.0"),
            device: VXLAN_DEVICE_V4.to_string(),
            onlink: true,
        }]),
    )
}

#[tokio::test]
async fn ensure_vxlan_creates_once_and_changes_mtu_and_mac_in_place() -> Result<(), NetlinkError> {
    let fake = populated().await?;
    let created = fake.vxlan_device(VXLAN_DEVICE_V4).await?;
    let created = created.ok_or_else(|| NetlinkError::Other("missing".into()))?;
    assert!(created.is(&device()), "{created:?}");
    assert_eq!(fake.ensure_vxlan(&device()).await?.index, created.index);
    let changed = VxlanDevice {
        mtu: 1400,
        mac: [0x66, 0, 0, 0, 0, 9],
        ..device()
    };
    let updated = fake.ensure_vxlan(&changed).await?;
    assert_eq!((updated.index, updated.mtu), (created.index, 1400));
    assert_eq!(updated.mac, changed.mac);
    assert_eq!(
        fake.neighbours().len(),
        1,
        "entries survive an in-place change"
    );
    assert_eq!(fake.fdb_entries().len(), 1);
    assert_eq!(fake.routes(), vec![tunnel_route()]);
    Ok(())
}

#[tokio::test]
async fn an_immutable_change_recreates_the_device_and_drops_what_went_through_it()
-> Result<(), NetlinkError> {
    for changed in [
        VxlanDevice {
            vni: 4097,
            ..device()
        },
        VxlanDevice {
            port: 8472,
            ..device()
        },
        VxlanDevice {
            local: ip("10.0.0.2"),
            ..device()
        },
        VxlanDevice {
            parent: None,
            ..device()
        },
    ] {
        let fake = populated().await?;
        let before = fake.ensure_vxlan(&device()).await?.index;
        let after = fake.ensure_vxlan(&changed).await?.index;
        assert_ne!(before, after, "{changed}");
        let read = fake.vxlan_device(VXLAN_DEVICE_V4).await?;
        assert!(read.is_some_and(|link| link.is(&changed)), "{changed}");
        assert!(fake.neighbours().is_empty() && fake.fdb_entries().is_empty());
        assert!(fake.routes().is_empty());
    }
    Ok(())
}

#[tokio::test]
async fn learning_on_or_another_kind_of_link_is_replaced() -> Result<(), NetlinkError> {
    let fake = FakeNetlink::new();
    fake.add_link("eth0", 1500);
    let learning = fake.preload_vxlan(&device(), true, true);
    assert_ne!(fake.ensure_vxlan(&device()).await?.index, learning.index);
    let down = fake.preload_vxlan(&device(), false, false);
    let up = fake.ensure_vxlan(&device()).await?;
    assert_eq!((up.index, up.up), (down.index, true), "brought up in place");

    let other = FakeNetlink::new();
    other.add_link("eth0", 1500);
    other.add_link(VXLAN_DEVICE_V4, 1500);
    assert!(other.vxlan_device(VXLAN_DEVICE_V4).await.is_err());
    other.ensure_vxlan(&device()).await?;
    assert!(other.vxlan_device(VXLAN_DEVICE_V4).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn a_missing_parent_or_an_mtu_above_the_parents_is_refused() -> Result<(), NetlinkError> {
    let fake = FakeNetlink::new();
    assert!(fake.ensure_vxlan(&device()).await.is_err(), "no eth0");
    fake.add_link("eth0", 1500);
    let too_large = VxlanDevice {
        mtu: 1451,
        ..device()
    };
    assert!(fake.ensure_vxlan(&too_large).await.is_err());
    let v6 = VxlanDevice {
        local: ip("fd00::1"),
        mtu: 1431,
        ..device()
    };
    assert!(fake.ensure_vxlan(&v6).await.is_err(), "IPv6 takes 70 bytes");
    assert!(fake.links().len() == 1);
    Ok(())
}

#[tokio::test]
async fn neighbours_and_fdb_entries_replace_and_delete_idempotently() -> Result<(), NetlinkError> {
    let fake = populated().await?;
    let moved = FdbEntry {
        mac: REMOTE_MAC,
        destination: ip("10.0.2.1"),
    };
    fake.replace_fdb(VXLAN_DEVICE_V4, &moved).await?;
    fake.replace_fdb(VXLAN_DEVICE_V4, &moved).await?;
    assert_eq!(fake.vxlan_fdb(VXLAN_DEVICE_V4).await?, vec![moved]);
    let stale = FdbEntry {
        destination: ip("10.0.1.1"),
        ..moved
    };
    fake.delete_fdb(VXLAN_DEVICE_V4, &stale).await?;
    assert_eq!(
        fake.vxlan_fdb(VXLAN_DEVICE_V4).await?.len(),
        1,
        "other dst kept"
    );
    fake.delete_fdb(VXLAN_DEVICE_V4, &moved).await?;
    fake.delete_fdb(VXLAN_DEVICE_V4, &moved).await?;
    assert!(fake.vxlan_fdb(VXLAN_DEVICE_V4).await?.is_empty());

    let neighbour = VxlanNeighbour {
        ip: ip("10.244.1.0"),
        mac: [0x66, 0, 0, 0, 0, 7],
    };
    fake.replace_neighbour(VXLAN_DEVICE_V4, &neighbour).await?;
    assert_eq!(
        fake.vxlan_neighbours(VXLAN_DEVICE_V4).await?,
        vec![neighbour]
    );
    fake.delete_neighbour(VXLAN_DEVICE_V4, neighbour.ip).await?;
    fake.delete_neighbour(VXLAN_DEVICE_V4, neighbour.ip).await?;
    assert!(fake.vxlan_neighbours(VXLAN_DEVICE_V4).await?.is_empty());

    let v6 = FdbEntry {
        mac: REMOTE_MAC,
        destination: ip("fd00::2"),
    };
    assert!(fake.replace_fdb(VXLAN_DEVICE_V4, &v6).await.is_err());
    assert!(fake.replace_fdb("eth0", &moved).await.is_err());
    assert!(fake.replace_fdb("missing", &moved).await.is_err());
    assert!(fake.replace_neighbour("missing", &neighbour).await.is_err());
    fake.delete_fdb("missing", &moved).await?;
    fake.delete_neighbour("missing", neighbour.ip).await?;
    assert!(fake.vxlan_fdb("missing").await?.is_empty());
    assert_eq!(
        fake.calls()[..2],
        [
            "ensure_vxlan vxlan.calico vni 4096 port 4789 local 10.0.0.1 dev eth0 mtu 1450 mac \
             66:00:00:00:00:01",
            "replace_neighbour vxlan.calico 10.244.1.0 lladdr 66:00:00:00:00:02",
        ]
    );
    Ok(())
}

#[tokio::test]
async fn delete_link_takes_the_entries_of_the_device_along() -> Result<(), NetlinkError> {
    let fake = populated().await?;
    let tunnel = "10.244.0.1/32".parse().unwrap_or_default();
    fake.set_link_addresses(VXLAN_DEVICE_V4, &[tunnel]).await?;
    assert_eq!(fake.link_addresses(VXLAN_DEVICE_V4), vec![tunnel]);
    assert!(fake.set_link_addresses("missing", &[tunnel]).await.is_err());
    assert_eq!(
        fake.delete_link(VXLAN_DEVICE_V4, None).await?,
        LinkDeletion::Deleted
    );
    assert!(fake.vxlan_device(VXLAN_DEVICE_V4).await?.is_none());
    assert!(fake.neighbours().is_empty() && fake.fdb_entries().is_empty());
    assert!(fake.routes().is_empty());
    assert!(fake.link_addresses(VXLAN_DEVICE_V4).is_empty());
    Ok(())
}
