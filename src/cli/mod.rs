//! The `warren` command line: clap commands that talk to the agent through `api::client`, plus daemonless `netns` verbs.
