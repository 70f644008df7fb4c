//! `warren version` and `warren info`.

use serde::Serialize;

use crate::api::system::{docker_arch, SystemInfo, VersionInfo};
use crate::api::API_VERSION;
use crate::cli::output::{print_json, Format};
use crate::cli::GlobalOptions;
use crate::error::Error;

#[derive(Debug, clap::Args)]
pub struct FormatArgs {
    /// Output format
    #[arg(short, long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ClientVersion {
    version: &'static str,
    api_version: &'static str,
    git_commit: &'static str,
    os: &'static str,
    arch: &'static str,
}

const CLIENT: ClientVersion = ClientVersion {
    version: crate::VERSION,
    api_version: API_VERSION,
    git_commit: env!("WARREN_GIT_COMMIT"),
    os: "linux",
    arch: "",
};

pub async fn version(cli: &GlobalOptions, args: &FormatArgs) -> Result<(), Error> {
    let client_version = ClientVersion {
        arch: docker_arch(),
        ..CLIENT
    };
    let server = cli.client()?.get::<VersionInfo>("/version").await;
    if args.format == Format::Json {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Both<'a> {
            client: &'a ClientVersion,
            server: Option<&'a VersionInfo>,
        }
        print_json(&Both {
            client: &client_version,
            server: server.as_ref().ok(),
        });
    } else {
        println!("Client:");
        println!(" Version:      {}", client_version.version);
        println!(" API version:  {}", client_version.api_version);
        println!(" Git commit:   {}", client_version.git_commit);
        println!(" OS/Arch:      linux/{}", client_version.arch);
        if let Ok(s) = &server {
            println!();
            println!("Server: {}", s.platform.name);
            println!(" Engine:");
            println!("  Version:      {}", s.version);
            println!(
                "  API version:  {} (minimum version {})",
                s.api_version, s.min_api_version
            );
            println!("  Git commit:   {}", s.git_commit);
            println!("  Built with:   {}", s.go_version);
            println!("  OS/Arch:      {}/{}", s.os, s.arch);
            println!("  Kernel:       {}", s.kernel_version);
        }
    }
    server.map(drop).map_err(Error::from)
}

pub async fn info(cli: &GlobalOptions, args: &FormatArgs) -> Result<(), Error> {
    let info: SystemInfo = cli.client()?.get("/info").await?;
    if args.format == Format::Json {
        print_json(&info);
        return Ok(());
    }
    let drivers = if info.plugins.network.is_empty() {
        "none".to_string()
    } else {
        info.plugins.network.join(" ")
    };
    println!("Server:");
    println!(" Containers: {}", info.containers);
    println!("  Running: {}", info.containers_running);
    println!("  Paused: {}", info.containers_paused);
    println!("  Stopped: {}", info.containers_stopped);
    println!(" Images: {}", info.images);
    println!(" Server Version: Warren {}", info.server_version);
    println!(" Network drivers: {drivers}");
    println!(" Cgroup Driver: {}", info.cgroup_driver);
    println!(" Cgroup Version: {}", info.cgroup_version);
    println!(" Kernel Version: {}", info.kernel_version);
    println!(" Operating System: {}", info.operating_system);
    println!(" OSType: {}", info.os_type);
    println!(" Architecture: {}", info.architecture);
    println!(" CPUs: {}", info.ncpu);
    println!(
        " Total Memory: {:.2}GiB",
        info.mem_total as f64 / (1u64 << 30) as f64
    );
    println!(" Name: {}", info.name);
    println!(" ID: {}", info.id);
    println!(" Warren Root Dir: {}", info.docker_root_dir);
    println!(" Debug Mode: {}", info.debug);
    for w in &info.warnings {
        println!("WARNING: {w}");
    }
    Ok(())
}
