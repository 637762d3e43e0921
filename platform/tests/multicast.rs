//! UDP multicast through `Driver::multicast`, on every backend.
//!
//! Proves:
//! - IPv4 on loopback: a socket that joined 239.255.42.1 on `lo` receives a datagram sent
//!   to the group (by a socket of the same driver whose sending interface, TTL and loopback
//!   were set through the driver), and not before it joined nor after it left (with
//!   IP_MULTICAST_ALL off, so another test's membership does not count). Loopback off
//!   cannot be seen on `lo` (what is sent through `lo` comes back on it whatever
//!   IP_MULTICAST_LOOP says): it is read back only. "Does not receive" is shown without
//!   waiting on a clock: a unicast marker datagram sent after the multicast one arrives,
//!   and the multicast one did not come before it (both take the same loopback path);
//! - the settings read back (getsockopt): TTL, loopback, sending interface, for IPv4 and
//!   IPv6 (IPv6 joins and leaves ff02::4242 on `lo`; its delivery is not tested: `lo` has
//!   no multicast route for IPv6 unless the MULTICAST flag is set on it);
//! - bad settings fail naming the problem: a unicast group, a group of the other family,
//!   a TTL above 255, an interface that does not exist.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ringwork_platform::multicast::{Interface, Multicast, MulticastError};
use ringwork_platform::{BackendChoice, Completion, Driver, SocketId, test_all_backends, testing};

use common::drive;

const GROUP_V4: Ipv4Addr = Ipv4Addr::new(239, 255, 42, 1);
const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x4242);

fn lo() -> Interface {
    Interface::Name("lo".into())
}

/// Sends `group_payload` to the group and then `marker` to `receiver`'s own address, and
/// returns whether the group datagram arrived (before the marker).
fn group_then_marker(
    driver: &mut Driver,
    sender: SocketId,
    receiver: SocketId,
    port: u16,
    group_payload: &'static [u8],
    marker: &'static [u8],
) -> bool {
    driver.send_to(
        sender,
        group_payload.into(),
        SocketAddr::from((GROUP_V4, port)),
    );
    driver.send_to(
        sender,
        marker.into(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
    );
    let mut got: Vec<Vec<u8>> = Vec::new();
    drive(
        driver,
        &mut got,
        |_, got, c| match c {
            Completion::ReceivedFrom { socket, buf, .. } => {
                assert_eq!(socket, receiver);
                got.push(buf.to_vec());
            }
            Completion::Sent { .. } => {}
            c => panic!("unexpected {c:?}"),
        },
        |_, got| got.iter().any(|d| d == marker),
        |_, got| format!("the marker did not arrive; got {got:?}"),
    );
    match got.as_slice() {
        [only] if only == marker => false,
        [first, second] if first == group_payload && second == marker => true,
        other => panic!("unexpected datagrams {other:?}"),
    }
}

fn refused(driver: &mut Driver, socket: SocketId, setting: Multicast) -> String {
    let error = driver.multicast(socket, &setting).expect_err("refused");
    error
        .source
        .get_ref()
        .and_then(|e| e.downcast_ref::<MulticastError>())
        .unwrap_or_else(|| panic!("no MulticastError in {error}"))
        .to_string()
}

test_all_backends! {
    fn join_receive_leave_on_loopback(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, Default::default()) else { return };
        let receiver = driver
            .bind_udp(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
            .expect("bind");
        let port = driver.local_addr(receiver).expect("address").as_socket().expect("IP").port();
        // Only the groups it joins (the other backend's test joins the same group).
        driver.multicast(receiver, &Multicast::AllGroups(false)).expect("IP_MULTICAST_ALL");
        assert!(driver.recv(receiver));
        let sender = driver.bind_udp(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("bind");
        for setting in [
            Multicast::SendInterface(Interface::Address(Ipv4Addr::LOCALHOST)),
            Multicast::Ttl(3),
            Multicast::Loopback(true),
        ] {
            driver.multicast(sender, &setting).expect("sender setting");
        }
        driver
            .with_socket(sender, |s| {
                assert_eq!(s.multicast_ttl_v4()?, 3);
                assert!(s.multicast_loop_v4()?);
                assert_eq!(s.multicast_if_v4()?, Ipv4Addr::LOCALHOST);
                Ok(())
            })
            .expect("read back");

        // Not a member yet: only the marker arrives.
        assert!(!group_then_marker(&mut driver, sender, receiver, port, b"group 0", b"marker 0"));
        let join = Multicast::Join { group: GROUP_V4.into(), interface: lo() };
        driver.multicast(receiver, &join).expect("join");
        assert!(group_then_marker(&mut driver, sender, receiver, port, b"group 1", b"marker 1"));

        assert!(group_then_marker(&mut driver, sender, receiver, port, b"group 2", b"marker 2"));

        let leave = Multicast::Leave { group: GROUP_V4.into(), interface: lo() };
        driver.multicast(receiver, &leave).expect("leave");
        assert!(!group_then_marker(&mut driver, sender, receiver, port, b"group 3", b"marker 3"));
        driver.multicast(sender, &Multicast::Loopback(false)).expect("loopback off");
        let off = driver.with_socket(sender, |s| s.multicast_loop_v4()).expect("read back");
        assert!(!off, "IP_MULTICAST_LOOP off");
    }

    fn ipv6_settings_read_back(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, Default::default()) else { return };
        let socket = driver.bind_udp(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))).expect("bind");
        let index = ringwork_platform::options::interface_index("lo").expect("lo");
        for setting in [
            Multicast::Join { group: GROUP_V6.into(), interface: Interface::Index(index) },
            Multicast::Ttl(7),
            Multicast::Loopback(false),
            Multicast::SendInterface(lo()),
        ] {
            driver.multicast(socket, &setting).expect("IPv6 setting");
        }
        driver
            .with_socket(socket, |s| {
                assert_eq!(s.multicast_hops_v6()?, 7);
                assert!(!s.multicast_loop_v6()?);
                assert_eq!(s.multicast_if_v6()?, index);
                Ok(())
            })
            .expect("read back");
        // Joining again is refused by the kernel (already a member); leaving works once.
        let join = Multicast::Join { group: GROUP_V6.into(), interface: lo() };
        let text = refused(&mut driver, socket, join);
        assert!(text.starts_with("IPV6_JOIN_GROUP: "), "{text}");
        let leave = Multicast::Leave { group: GROUP_V6.into(), interface: lo() };
        driver.multicast(socket, &leave).expect("leave");
    }

    fn bad_settings_are_refused(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, Default::default()) else { return };
        let v4 = driver.bind_udp(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("bind");
        let cases = [
            (
                Multicast::Join { group: IpAddr::V4(Ipv4Addr::LOCALHOST), interface: Interface::Any },
                "127.0.0.1 is not a multicast address",
            ),
            (
                Multicast::Join { group: GROUP_V6.into(), interface: Interface::Any },
                "group ff02::4242 on an IPv4 socket",
            ),
            (Multicast::Ttl(256), "multicast TTL 256: must be 0 to 255"),
            (
                Multicast::Join {
                    group: GROUP_V4.into(),
                    interface: Interface::Name("nosuchif0".into()),
                },
                "interface \"nosuchif0\": no interface",
            ),
        ];
        for (setting, text) in cases {
            let got = refused(&mut driver, v4, setting);
            assert!(got.starts_with(text), "{got} starts with {text}");
        }
    }
}
