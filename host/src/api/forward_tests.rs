use std::sync::atomic::{AtomicUsize, Ordering};

use corral_proto::{CreateMode, Reply};

use super::*;

/// A stand-in for the leader: it records each exchange (the leader and the paths in it), holds
/// it until the test lets it go (exchanges to leaders in `free` go at once), then answers each
/// request with its own path, or `NodeExists` for a path ending in `!`.
struct FakeLeader {
    seen: Mutex<Vec<(u64, Vec<String>)>>,
    gate: Semaphore,
    free: Vec<u64>,
    fail: Option<PeerError>,
}

impl FakeLeader {
    fn new() -> FakeLeader {
        FakeLeader { seen: Mutex::default(), gate: Semaphore::new(0), free: Vec::new(), fail: None }
    }

    fn exchanges(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Link for FakeLeader {
    fn exchange(&self, to: &Target, items: Vec<(Ctx, Request)>, _timeout: Duration) -> BoxFuture<'_, Exchanged> {
        let leader = to.0;
        let paths: Vec<String> = items.iter().map(|(_, r)| path_of(r)).collect();
        self.seen.lock().unwrap().push((leader, paths.clone()));
        Box::pin(async move {
            if !self.free.contains(&leader) {
                self.gate.acquire().await.expect("gate").forget();
            }
            if let Some(e) = &self.fail {
                return Err(e.clone());
            }
            Ok(paths
                .into_iter()
                .map(|p| match p.strip_suffix('!') {
                    Some(_) => Response::Err(Error::NodeExists { path: p }),
                    None => Response::Ok(Reply::Children(vec![p])),
                })
                .collect())
        })
    }
}

fn path_of(r: &Request) -> String {
    match r {
        Request::Create { path, .. } => path.clone(),
        other => panic!("the test sends creates only, not {other:?}"),
    }
}

fn create(path: &str) -> Request {
    Request::Create { path: path.to_string(), data: Vec::new(), mode: CreateMode::default() }
}

type Sent = Arc<AtomicUsize>;

/// Forward a create of `path` to `leader` on its own task. `sent` counts the tasks that have
/// handed their request to the lane (on the test's one thread, a task's count and its send
/// happen in the same poll).
fn forward(f: &Arc<Forwarder>, leader: u64, path: &str, sent: &Sent) -> tokio::task::JoinHandle<Answer> {
    let (f, path, sent) = (f.clone(), path.to_string(), sent.clone());
    tokio::spawn(async move {
        sent.fetch_add(1, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(30);
        f.forward(leader, "127.0.0.1:1", Ctx::default(), create(&path), deadline).await
    })
}

/// Wait for `what`, failing the test (not hanging it) if it never comes.
async fn until(what: impl Fn() -> bool) {
    let wait = async {
        while !what() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait).await.expect("the awaited state never came");
}

/// Put two requests to `leader` in flight, one after the other, so that both of its
/// exchanges are busy.
async fn fill(f: &Arc<Forwarder>, fake: &FakeLeader, leader: u64, sent: &Sent) -> Vec<tokio::task::JoinHandle<Answer>> {
    let before = fake.exchanges();
    let mut tasks = Vec::new();
    for i in 0..2 {
        tasks.push(forward(f, leader, &format!("/busy{i}"), sent));
        until(|| fake.exchanges() == before + i + 1).await;
    }
    tasks
}

fn answered_path(a: Answer) -> Result<String, String> {
    match a {
        Ok(Response::Ok(Reply::Children(mut p))) => Ok(p.remove(0)),
        Ok(Response::Err(e)) => Err(e.to_string()),
        other => panic!("unexpected answer {other:?}"),
    }
}

#[tokio::test]
async fn requests_that_wait_for_a_free_exchange_go_together_and_each_gets_its_own_answer() {
    let leader = Arc::new(FakeLeader::new());
    let f = Arc::new(Forwarder::over(leader.clone()));
    let sent = Sent::default();
    let exchanges = || leader.exchanges();

    // A lone request goes at once, alone; so does a second: two exchanges may be in flight.
    let busy = fill(&f, &leader, 1, &sent).await;

    // These arrive while both are busy: they wait, and go as one exchange when one is free.
    let later: Vec<_> =
        (0..10).map(|i| forward(&f, 1, &format!("/b{i}{}", if i == 4 { "!" } else { "" }), &sent)).collect();
    until(|| sent.load(Ordering::SeqCst) == 12).await;
    assert_eq!(exchanges(), 2, "nothing more is sent while both exchanges are in flight");

    leader.gate.add_permits(1);
    until(|| exchanges() == 3).await;
    leader.gate.add_permits(2);
    for (i, task) in busy.into_iter().enumerate() {
        assert_eq!(answered_path(task.await.expect("join")), Ok(format!("/busy{i}")));
    }
    for (i, task) in later.into_iter().enumerate() {
        let got = answered_path(task.await.expect("join"));
        if i == 4 {
            assert!(got.as_ref().is_err_and(|e| e.contains("/b4!")), "b4 gets its own error: {got:?}");
        } else {
            assert_eq!(got, Ok(format!("/b{i}")), "each request gets its own answer");
        }
    }
    let seen = leader.seen.lock().unwrap().clone();
    let third: Vec<String> = (0..10).map(|i| format!("/b{i}{}", if i == 4 { "!" } else { "" })).collect();
    assert_eq!(seen, vec![(1, vec!["/busy0".to_string()]), (1, vec!["/busy1".to_string()]), (1, third)]);
}

#[tokio::test]
async fn a_leader_that_does_not_answer_holds_up_only_requests_to_it() {
    let leader = Arc::new(FakeLeader { free: vec![2], ..FakeLeader::new() });
    let f = Arc::new(Forwarder::over(leader.clone()));
    let sent = Sent::default();
    let mut stuck = fill(&f, &leader, 1, &sent).await;
    stuck.push(forward(&f, 1, "/queued", &sent));
    until(|| sent.load(Ordering::SeqCst) == 3).await;

    // Node 2 was elected; node 1 (dead, say) still holds both of its exchanges.
    let to_new = forward(&f, 2, "/new", &sent);
    let got = tokio::time::timeout(Duration::from_secs(5), to_new).await.expect("held up by the old leader");
    assert_eq!(answered_path(got.expect("join")), Ok("/new".into()));
    assert!(stuck.iter().all(|t| !t.is_finished()));
}

#[tokio::test]
async fn a_failed_exchange_fails_each_of_its_requests_with_its_error() {
    for (fail, nothing_sent) in
        [(PeerError::Connect(1, "refused".into()), true), (PeerError::Transport(1, "reset".into()), false)]
    {
        let leader = Arc::new(FakeLeader { fail: Some(fail), ..FakeLeader::new() });
        let f = Arc::new(Forwarder::over(leader.clone()));
        let sent = Sent::default();
        let tasks: Vec<_> = (0..5).map(|i| forward(&f, 1, &format!("/x{i}"), &sent)).collect();
        until(|| sent.load(Ordering::SeqCst) == 5).await;
        leader.gate.add_permits(5);
        for t in tasks {
            match t.await.expect("join") {
                Err(e) => assert_eq!(e.nothing_sent(), nothing_sent, "{e}"),
                Ok(r) => panic!("a failed exchange answered {r:?}"),
            }
        }
        let paths: usize = leader.seen.lock().unwrap().iter().map(|(_, p)| p.len()).sum();
        assert_eq!(paths, 5);
    }
}

#[tokio::test]
async fn a_caller_that_gives_up_is_left_out_of_the_next_exchange() {
    let leader = Arc::new(FakeLeader::new());
    let f = Arc::new(Forwarder::over(leader.clone()));
    let sent = Sent::default();
    let busy = fill(&f, &leader, 1, &sent).await;
    let waiting: Vec<_> = (0..3).map(|i| forward(&f, 1, &format!("/w{i}"), &sent)).collect();
    until(|| sent.load(Ordering::SeqCst) == 5).await;
    waiting[1].abort();
    until(|| waiting[1].is_finished()).await;

    leader.gate.add_permits(10);
    for t in busy {
        t.await.expect("join").expect("answered");
    }
    until(|| leader.exchanges() == 3).await;
    let third = leader.seen.lock().unwrap()[2].1.clone();
    assert_eq!(third, vec!["/w0".to_string(), "/w2".to_string()]);
}
