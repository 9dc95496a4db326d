//! The bodies the cache hands on: [`RequestBody`], what the inner service reads (the client's
//! body, or the bytes read to key the request and then the rest), and [`ResponseBody`], what
//! the client reads (a stored body, or the inner body, recorded for the store as it streams).

mod request;
mod response;

pub use self::request::RequestBody;
pub use self::response::ResponseBody;
