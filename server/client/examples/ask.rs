use witness_client::{answer_hint, proto, Ask, Client, Credentials};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let creds = Credentials {
        principal: Some("deployer".into()),
        ..Default::default()
    };
    let mut witness = Client::connect("127.0.0.1:50051", &creds).await?;
    let input = serde_json::json!({"service": "api", "version": "1.4.2"});
    let ask = Ask::new("deploy.production", input, &["sre"])
        .on_created(|d| println!("{}", answer_hint(d))); // its id and how to answer it
    let decision = witness.ask(ask).await?;
    let by: Vec<_> = decision
        .answers
        .iter()
        .map(|a| a.operator.as_str())
        .collect();
    println!("{:?} by {by:?}", proto::Status::try_from(decision.status)?);
    Ok(())
}
