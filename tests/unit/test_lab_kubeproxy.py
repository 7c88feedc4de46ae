"""kube-proxy's iptables-restore text for a lab node: chain names, hooks, and the
rules each scenario changes."""

from __future__ import annotations

from tracer.lab.cluster import NODES, Cluster, ClusterOptions, Pod, ServicePort, build_cluster
from tracer.lab.kubeproxy import ProxyOptions, ext_chain, render, sep_chain, svc_chain


def _rules(opts: ClusterOptions | None = None, proxy: ProxyOptions | None = None,
           node: int = 0) -> str:
    return render(build_cluster(opts or ClusterOptions()), NODES[node], proxy or ProxyOptions())


def test_chain_names_are_kube_proxys_hashes() -> None:
    # the name every cluster has for kube-system/kube-dns:dns (udp)
    dns = next(s for s in build_cluster().services if s.name == "kube-dns")
    assert svc_chain(dns, dns.ports[0]) == "KUBE-SVC-TCOU7JCQXEZGVUNU"
    web = next(s for s in build_cluster().services if s.name == "web")
    assert ext_chain(web, web.ports[0]).removeprefix("KUBE-EXT-") == \
        svc_chain(web, web.ports[0]).removeprefix("KUBE-SVC-")
    assert sep_chain(web, web.ports[0], "10.42.0.11:8080").startswith("KUBE-SEP-")


def test_hooks_like_kube_proxy() -> None:
    text = _rules()
    assert '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' \
        in text
    assert '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' in text
    assert "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" " \
        "-j KUBE-POSTROUTING" in text
    assert "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000" in text
    assert "-A FORWARD -m conntrack --ctstate NEW" in text
    # the NodePort jump is the last rule of KUBE-SERVICES
    svc_rules = [line for line in text.splitlines() if line.startswith("-A KUBE-SERVICES ")
                 and "*filter" not in line]
    nat_svc = svc_rules[:svc_rules.index(next(r for r in svc_rules if "KUBE-NODEPORTS" in r)) + 1]
    assert "KUBE-NODEPORTS" in nat_svc[-1]
    assert text.count("*nat") == 1 and text.count("*filter") == 1 and text.count("COMMIT") == 2


def test_clusterip_nodeport_externalip_dnat() -> None:
    text = _rules()
    web = next(s for s in build_cluster().services if s.name == "web")
    svc, ext = svc_chain(web, web.ports[0]), ext_chain(web, web.ports[0])
    assert f"-A KUBE-SERVICES -d 10.43.0.20/32 -p tcp -m comment --comment " \
           f"\"default/web:http cluster IP\" -m tcp --dport 80 -j {svc}" in text
    assert f"-m tcp --dport 30080 -j {ext}" in text
    assert f"-d 192.168.1.100/32 -p tcp -m comment --comment \"default/web:http external IP\" " \
           f"-m tcp --dport 80 -j {ext}" in text
    assert "-j DNAT --to-destination 10.42.0.11:8080" in text
    assert f"-A {ext} -j {svc}" in text


def test_externalip_outside_only() -> None:
    text = _rules(proxy=ProxyOptions(externalip_local=False))
    assert "-m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j KUBE-SVC-" in text
    assert "-m addrtype --dst-type LOCAL -j KUBE-SVC-" in text
    web = next(s for s in build_cluster().services if s.name == "web")
    assert f"-d 192.168.1.100/32 -p tcp -m comment --comment \"default/web:http external IP\" " \
           f"-m tcp --dport 80 -j {ext_chain(web, web.ports[0])}" not in text


def test_no_endpoints_rejects() -> None:
    healthy, broken = _rules(), _rules(ClusterOptions(orders_running=False))
    reject = ('-A KUBE-SERVICES -d 10.43.0.30/32 -p tcp -m comment --comment '
              '"default/orders:http has no endpoints" -m tcp --dport 80 '
              '-j REJECT --reject-with icmp-port-unreachable')
    assert reject in broken and reject not in healthy
    assert "10.42.0.13:8080" in healthy and "10.42.0.13" not in broken


def test_statistic_split_over_endpoints() -> None:
    cluster = build_cluster()
    web = next(s for s in cluster.services if s.name == "web")
    web_b = Pod("web-b", "default", "node2", (("app", "web"),), cluster.pod("web-a").container,
                ip="10.42.1.12")
    text = render(Cluster(cluster.nodes, (*cluster.pods, web_b), cluster.services), NODES[0])
    svc = svc_chain(web, web.ports[0])
    lines = [line for line in text.splitlines() if line.startswith(f"-A {svc} ")
             and "KUBE-SEP" in line]
    assert len(lines) == 2
    assert "--probability 0.50000000000" in lines[0] and "statistic" not in lines[1]


def test_flannel_masquerade_and_its_absence() -> None:
    rule = ('-A FLANNEL-POSTRTG -s 10.42.0.0/16 ! -d 224.0.0.0/4 -m comment --comment '
            '"flanneld masq" -j MASQUERADE --random-fully')
    assert rule in _rules()
    assert "FLANNEL-POSTRTG" not in _rules(proxy=ProxyOptions(masquerade=False))
    # node2's own pod CIDR is the one exempted
    assert "-s 10.42.1.0/24 -d 10.42.0.0/16" in _rules(node=1)


def test_policy_chains_only_on_the_pods_node() -> None:
    opts = ClusterOptions(web_policy=True)
    node1, node2 = _rules(opts), _rules(opts, node=1)
    assert "-A FORWARD -m comment --comment \"kube-router netpol" in node1.replace("  ", " ")
    assert "-d 10.42.0.11/32" in node1 and "-j DROP" in node1
    assert "KUBE-POD-FW-" not in node2


def test_service_port_defaults() -> None:
    assert ServicePort("dns", 53, 53, "UDP").node_port is None
