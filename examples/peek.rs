use bizrelay::{context::*, destination::DestinationKind, render::Renderer, samples};
fn main() {
    let r = Renderer::builtin();
    for s in samples::reference().into_iter().chain(samples::adversarial()) {
        for kind in DestinationKind::ALL {
            let c = hook_context(&s.envelope, &s.hook, &Meta{route:"r",destination:"d",destination_type:kind,received_at_ms:1_795_830_000_000,mask_recipient:true});
            let out = r.render(kind, s.hook.kind().default_template(), &c).unwrap();
            if std::env::args().nth(1).as_deref() == Some(&s.name) { println!("== {} {}\n{}", s.name, kind.as_str(), if kind.is_json() { serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(&out).unwrap()).unwrap() } else { out }); }
        }
    }
}
