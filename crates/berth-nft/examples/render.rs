//! Prints the nft scripts berth runs for one network (`br0`, 10.88.0.0/16) with two published
//! ports, without running them: `cargo run -p berth-nft --example render [TABLE]`.

use berth_nft::{NetworkRules, PortMap, Proto, script};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let table = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "berth".to_string());
    let net = NetworkRules::new("br0", vec!["10.88.0.0/16".parse()?]);
    let ports = [
        PortMap {
            proto: Proto::Tcp,
            host_ip: None,
            host_port: 8080,
            container_ip: "10.88.0.2".parse()?,
            container_port: 80,
        },
        PortMap {
            proto: Proto::Udp,
            host_ip: Some("127.0.0.1".parse()?),
            host_port: 5353,
            container_ip: "10.88.0.2".parse()?,
            container_port: 53,
        },
    ];
    println!("# ensure");
    print!("{}", script::ensure(&table)?);
    println!("# add_network");
    print!("{}", script::add_network(&table, &net)?);
    println!("# add_ports");
    print!("{}", script::add_ports(&table, &ports)?);
    Ok(())
}
